"""Opt-out is total (R14): every truthy spelling, zero requests on the wire, zero files.

The one write allowed: a logout still forgets a user the state dir holds (one record).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.capture_server import CaptureServer
from idstitch.adapters.sinks import NullSink, PostHogSink
from idstitch.machine import IdentityStitch
from idstitch.service import Storage
from idstitch.store import FileLog, read_snapshot
from support.cli_hosts import Terminal
from support.reliability import run_host, seed_state_dir, tree

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
    unchanged (still empty): no state dir holds a user, so even the
    logout has nothing to forget on disk (R14).
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
        with Terminal() as terminal:  # a terminal, so only the opt-out can keep it unshown
            assert not stitch.first_run_notice("notice", stream=terminal.stream)
        stitch.logout()
        stitch.close(1.0)
        assert (True, False) == (stitch.opted_out, stitch.persisting), (variable, spelling)
        tried += 1
    assert (64, [], before) == (tried, server.paths, tree(home))


#: The opted-out host run: a response and a login (stamped in memory only), a capture, a logout.
OPTED_OUT_STEPS = ["response:user-a", "login:user-b", "capture:work", "logout"]


def opted_out_run(folder: Path | str, env: dict[str, str]) -> dict[str, object]:
    """Run the host opted out on ``folder``: exit 0, nothing on stderr; idstitch's report."""
    run = run_host(folder, *OPTED_OUT_STEPS, env=env)
    assert (0, "") == (run.returncode, run.stderr)
    assert run.report is not None
    assert (True, False) == (run.report["opted_out"], run.report["persisting"])
    return run.report


#: The two files the one allowed write changes.
_WRITTEN = ("identity.jsonl", "telemetry.json")


def _besides_log_and_snapshot(found: dict[str, Any]) -> dict[str, Any]:
    """A :func:`tree` without the log and the snapshot."""
    return {name: entry for name, entry in found.items() if name not in _WRITTEN}


@pytest.mark.processes
@pytest.mark.parametrize("variable", ["DO_NOT_TRACK", HOST_VARIABLE])
@pytest.mark.parametrize("spelling", ["1", "TRUE", "yEs", "On"])
def test_an_opted_out_logout_on_a_dir_holding_a_user_appends_exactly_one_logout(
    tmp_path: Path, server: CaptureServer, variable: str, spelling: str
) -> None:
    """The host script opted out on a state dir holding user-b: the one write R14 allows.

    8 cases: exit 0, zero requests at the capture server; the log gains
    exactly one record, the logout of the device in force (to the device
    the run reports), the snapshot follows it and nothing else in the dir
    changes; the next run without the opt-out opens healthy, heals
    nothing and comes back without the user (R16).
    """
    used = tmp_path / "used"
    seeded = seed_state_dir(used)
    held = FileLog(used / "identity.jsonl").tail().record
    assert held is not None
    before = tree(used)
    env = {"HOME": str(tmp_path / "home"), variable: spelling, "HOST_CAPTURE_URL": server.url}
    report = opted_out_run(used, env)
    records = list(FileLog(used / "identity.jsonl").records(strict=True))
    appended = [(r["kind"], r["device_id"], r.get("new_device_id")) for r in records[4:]]
    assert ([], [("logout", held["device_id"], report["device_id"])]) == (
        server.paths,
        appended,
    )
    assert seeded == (used / "identity.jsonl").read_bytes()[: len(seeded)]
    snapshot = read_snapshot(used / "telemetry.json").data
    assert (records[-1]["seq"], records[-1]["h"], report["device_id"]) == (
        snapshot["seq"],
        snapshot["h"],
        snapshot["device_id"],
    )
    assert _besides_log_and_snapshot(before) == _besides_log_and_snapshot(tree(used))
    later = IdentityStitch.open(state_dir=used, runtime="persistent", sink=NullSink(), env={})
    assert (Storage.HEALTHY, [], None, report["device_id"]) == (
        later.storage,
        later.kept,
        later.user_id,
        later.device_id,
    )


@pytest.mark.processes
@pytest.mark.parametrize("variable", ["DO_NOT_TRACK", HOST_VARIABLE])
@pytest.mark.parametrize("spelling", ["1", "TRUE", "yEs", "On"])
def test_an_opted_out_host_run_on_a_dir_holding_no_user_touches_neither_wire_nor_disk(
    tmp_path: Path, server: CaptureServer, variable: str, spelling: str
) -> None:
    """The host script opted out on a logged-out state dir and on a default one not yet made.

    8 cases, 2 runs each: exit 0, zero requests at the capture server, both
    trees (HOME and the logged-out state dir) unchanged byte for byte: the
    logout has no user on disk to forget, and the stamp was in memory only.
    """
    logged_out = tmp_path / "logged-out"
    seed_state_dir(logged_out)
    IdentityStitch.open(
        state_dir=logged_out, runtime="persistent", sink=NullSink(), env={}
    ).logout()
    home = tmp_path / "home"
    home.mkdir()
    before = (tree(logged_out), tree(home))
    env = {"HOME": str(home), variable: spelling, "HOST_CAPTURE_URL": server.url}
    for folder in (logged_out, "@default"):
        opted_out_run(folder, env)
    assert ([], before) == (server.paths, (tree(logged_out), tree(home)))


@pytest.mark.processes
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
