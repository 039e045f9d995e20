"""Opt-out is total (R14): every truthy spelling, zero requests on the wire, zero files."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from idstitch.adapters.capture_server import CaptureServer
from idstitch.adapters.sinks import PostHogSink
from idstitch.machine import IdentityStitch
from reliability_support import run_host, seed_state_dir, tree

HOST_VARIABLE = "HOSTCLI_NO_TELEMETRY"


def every_case(word: str) -> list[str]:
    """``word`` in every upper/lower-case combination."""
    options = [(c.lower(), c.upper()) if c.isalpha() else (c,) for c in word]
    return sorted({"".join(chosen) for chosen in itertools.product(*options)})


#: 1 + 16 + 8 + 4 case spellings of R14's words, and a few padded with whitespace.
SPELLINGS = [
    *every_case("1"),
    *every_case("true"),
    *every_case("yes"),
    *every_case("on"),
    " 1",
    "true\n",
    "\tYes ",
]


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    """One local capture server for the module; each test checks it saw nothing."""
    with CaptureServer() as capture:
        yield capture


def test_every_truthy_spelling_of_both_variables_sends_and_writes_nothing(
    tmp_path: Path, server: CaptureServer
) -> None:
    """32 spellings x 2 variables (DO_NOT_TRACK, the host's) = 64 opens with the real PostHog sink.

    Each open (default state dir under an empty HOME) goes through login,
    a response, captures, a command, the first-run notice, logout and
    close: the capture server gets zero requests and the HOME tree is
    unchanged (still empty).
    """
    home = tmp_path / "home"
    home.mkdir()
    before = tree(home)
    tried = 0
    for variable, spelling in itertools.product(("DO_NOT_TRACK", HOST_VARIABLE), SPELLINGS):
        env = {"HOME": str(home), variable: spelling}
        stitch = IdentityStitch.open(
            "hostcli",
            runtime="persistent",
            sink=PostHogSink("phc_opt_out_test", host=server.url, env={}),
            env=env,
            opt_out_vars=(HOST_VARIABLE,),
        )
        with stitch.command("work"):
            stitch.observe_authenticated_response("user-a")
            stitch.login("user-a")
            assert not stitch.capture("something", {"n": 1})
        assert not stitch.first_run_notice("notice")
        stitch.logout()
        stitch.close(1.0)
        assert (True, False) == (stitch.opted_out, stitch.persisting), (variable, spelling)
        tried += 1
    assert (64, [], before) == (tried, server.paths, tree(home))


@pytest.mark.parametrize("variable", ["DO_NOT_TRACK", HOST_VARIABLE])
@pytest.mark.parametrize("spelling", ["1", "TRUE", "yEs", "On"])
def test_an_opted_out_host_run_touches_neither_wire_nor_disk(
    tmp_path: Path, server: CaptureServer, variable: str, spelling: str
) -> None:
    """The host script in a subprocess, opted out, on a used state dir and on a default one.

    8 cases, 2 runs each: exit 0, zero requests at the capture server,
    both trees (HOME and the used state dir) unchanged byte for byte.
    """
    used = tmp_path / "used"
    seed_state_dir(used)
    home = tmp_path / "home"
    home.mkdir()
    before = (tree(used), tree(home))
    env = {"HOME": str(home), variable: spelling, "HOST_CAPTURE_URL": server.url}
    steps = ["response:user-a", "login:user-b", "capture:work", "logout"]
    for folder in (used, "@default"):
        run = run_host(folder, *steps, env=env)
        assert (0, "") == (run.returncode, run.stderr)
        assert run.report is not None
        assert (True, False) == (run.report["opted_out"], run.report["persisting"])
    assert ([], before) == (server.paths, (tree(used), tree(home)))


def test_a_falsy_value_is_not_an_opt_out(tmp_path: Path) -> None:
    """The control: DO_NOT_TRACK=0 and the host's variable empty send the alias and the command."""
    home = tmp_path / "home"
    home.mkdir()
    with CaptureServer() as capture:
        env = {
            "HOME": str(home),
            "DO_NOT_TRACK": "0",
            HOST_VARIABLE: "",
            "HOST_CAPTURE_URL": capture.url,
        }
        run = run_host("@default", "login:user-a", env=env)
        assert (0, False, True) == (
            run.returncode,
            run.report and run.report["opted_out"],
            run.report and run.report["persisting"],
        )
        events = sorted(m.get("event", "") for m in capture.wait_for(2))
    assert ["$create_alias", "cli_command_executed"] == events
