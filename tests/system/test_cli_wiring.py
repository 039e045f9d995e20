"""idstitch.instrument on real click and typer apps run as processes: one event per run for
every way a run ends, the app's own behaviour unchanged, and the first-run notice's rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.capture_server import CaptureServer
from idstitch.store import FileLog
from support.cli_hosts import host_env, run_app, run_app_on_terminal, run_report
from support.helpers import bare_environment

pytestmark = pytest.mark.processes

NOTICE = "hostcli sends anonymous usage data; HOST_NO_TELEMETRY=1 turns it off."

#: args -> (the event's properties but its duration, for click and for typer).
ENDINGS: list[tuple[list[str], dict[str, Any], dict[str, Any]]] = [
    (["hello"], {"command": "hello", "exit_code": 0}, {"command": "hello", "exit_code": 0}),
    (
        ["db", "push"],
        {"command": "db push", "exit_code": 0},
        {"command": "db push", "exit_code": 0},
    ),
    (
        ["fail"],
        {"command": "fail", "exit_code": 1, "error_type": "ValueError"},
        {"command": "fail", "exit_code": 1, "error_type": "ValueError"},
    ),
    (["quit", "3"], {"command": "quit", "exit_code": 3}, {"command": "quit", "exit_code": 3}),
    (["leave", "4"], {"command": "leave", "exit_code": 4}, {"command": "leave", "exit_code": 4}),
    (
        ["interrupt"],
        {"command": "interrupt", "exit_code": 130, "interrupted": True},
        {"command": "interrupt", "exit_code": 130, "interrupted": True},
    ),
    (
        ["decorated"],
        {"command": "decorated", "exit_code": 0},
        {"command": "decorated", "exit_code": 0},
    ),
    (
        ["--help"],
        {"command": "cli", "exit_code": 0, "help": True},
        {"command": "typer_app.py", "exit_code": 0, "help": True},
    ),
    (
        ["db", "push", "--help"],
        {"command": "db push", "exit_code": 0, "help": True},
        {"command": "db push", "exit_code": 0, "help": True},
    ),
    (
        ["nope"],
        {"command": "cli", "exit_code": 2, "error_type": "NoSuchCommand"},
        {"command": "typer_app.py", "exit_code": 2, "error_type": "UsageError"},
    ),
    (
        ["hello", "--bad"],
        {"command": "hello", "exit_code": 2, "error_type": "NoSuchOption"},
        {"command": "hello", "exit_code": 2, "error_type": "NoSuchOption"},
    ),
]


def reported(server: CaptureServer, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events received, each as what it says about its run."""
    return [run_report(m["event"], m["properties"]) for m in server.wait_for(count)[:count]]


@pytest.mark.parametrize("framework", ["click", "typer"])
@pytest.mark.parametrize(
    ("args", "on_click", "on_typer"), ENDINGS, ids=[" ".join(a) for a, _, _ in ENDINGS]
)
def test_each_ending_sends_one_event_and_changes_nothing(
    tmp_path: Path, framework: str, args: list[str], on_click: Any, on_typer: Any
) -> None:
    """Each way a run ends sends exactly one cli_command_executed with its command path and
    exit code; stdout and the exit code are the uninstrumented app's, stderr too but for an
    exception's traceback, whose last line is the same."""
    expected = on_click if framework == "click" else on_typer
    with CaptureServer() as server, CaptureServer() as elsewhere:
        wired = run_app(framework, args, host_env(tmp_path / "wired", server.url))
        plain_env = host_env(tmp_path / "plain", elsewhere.url, HOST_WIRED="0")
        plain = run_app(framework, args, plain_env)
        events = reported(server, 1)
        assert 1 == len(server.events("cli_command_executed"))
    assert [{"event": "cli_command_executed", **expected}] == events
    assert (plain.code, plain.stdout) == (wired.code, wired.stdout)
    if "error_type" in expected and expected["exit_code"] == 1:
        assert plain.stderr.splitlines()[-1:] == wired.stderr.splitlines()[-1:]
        assert "secret-message" not in str(events)
    else:
        assert plain.stderr == wired.stderr


@pytest.mark.parametrize(
    ("args", "printed", "expected"),
    [
        (["tell"], "returned 'told'\n", {"command": "tell", "exit_code": 0}),
        (["leave", "4"], "returned 4\n", {"command": "leave", "exit_code": 4}),
        (
            ["fail"],
            "raised ValueError\n",
            {"command": "fail", "exit_code": 1, "error_type": "ValueError"},
        ),
        (
            ["interrupt"],
            "raised Abort\n",
            {"command": "interrupt", "exit_code": 130, "interrupted": True},
        ),
        (
            ["nope"],
            "raised NoSuchCommand\n",
            {"command": "cli", "exit_code": 2, "error_type": "NoSuchCommand"},
        ),
    ],
)
def test_click_standalone_mode_false_returns_and_raises_as_before(
    tmp_path: Path, args: list[str], printed: str, expected: dict[str, Any]
) -> None:
    """With standalone_mode=False main returns or raises what it would uninstrumented; the
    event still says how the run ended (ctx.exit(4) returns 4: exit_code 4)."""
    with CaptureServer() as server, CaptureServer() as elsewhere:
        wired = run_app("click", args, host_env(tmp_path, server.url, HOST_STANDALONE="0"))
        plain_env = host_env(tmp_path, elsewhere.url, HOST_STANDALONE="0", HOST_WIRED="0")
        plain = run_app("click", args, plain_env)
        events = reported(server, 1)
    assert (0, printed) == (wired.code, wired.stdout)
    assert (plain.code, plain.stdout) == (wired.code, wired.stdout)
    assert [{"event": "cli_command_executed", **expected}] == events


def test_ctrl_c_at_a_click_prompt_is_an_interrupt(tmp_path: Path) -> None:
    """Ctrl-C at click.prompt (click raises Abort from it, prints Aborted!, exits 1): the
    event says interrupted, exit_code 130; the process still exits 1 as click makes it."""
    waiting, typing = os.pipe()  # stdin open, nothing typed: the prompt waits for Ctrl-C
    try:
        with CaptureServer() as server:
            wired = run_app("click", ["ask"], host_env(tmp_path, server.url), stdin=waiting)
            events = reported(server, 1)
    finally:
        os.close(waiting)
        os.close(typing)
    assert (1, "Aborted!") == (wired.code, wired.stderr.splitlines()[-1])
    expected = {"event": "cli_command_executed", "command": "ask"}
    assert [{**expected, "exit_code": 130, "interrupted": True}] == events


@pytest.mark.parametrize("framework", ["click", "typer"])
def test_a_shell_completion_run_sends_nothing_and_completes_as_before(
    tmp_path: Path, framework: str
) -> None:
    """A completion request (_PROG_COMPLETE set) prints the same completions and sends no
    event (the next real run's event is the only one the server gets)."""
    program, instruction, completions = {
        "click": ("_CLICK_APP_PY_COMPLETE", "bash_complete", "plain,db\nplain,decorated\n"),
        "typer": ("_TYPER_APP.PY_COMPLETE", "complete_bash", "decorated\ndb\n"),
    }[framework]
    completing = {program: instruction, "COMP_WORDS": "app d", "COMP_CWORD": "1"}
    with CaptureServer() as server:
        wired = run_app(framework, [], host_env(tmp_path, server.url, **completing))
        plain = run_app(framework, [], host_env(tmp_path, server.url, HOST_WIRED="0", **completing))
        run_app(framework, ["hello"], host_env(tmp_path, server.url))
        events = reported(server, 1)
    assert (0, completions) == (wired.code, wired.stdout)
    assert (plain.code, plain.stdout, plain.stderr) == (wired.code, wired.stdout, wired.stderr)
    assert [{"event": "cli_command_executed", "command": "hello", "exit_code": 0}] == events
    assert 1 == len(server.events("cli_command_executed"))


# --- the first-run notice -----------------------------------------------------------------


@pytest.mark.parametrize("framework", ["click", "typer"])
def test_the_notice_shows_once_on_a_terminal_before_the_command_output(
    tmp_path: Path, framework: str
) -> None:
    """On a terminal the notice comes first, before the command's own output; the next run on
    the same state dir does not show it again."""
    with CaptureServer() as server:
        env = host_env(tmp_path, server.url, HOST_NOTICE=NOTICE)
        first = run_app_on_terminal(framework, ["hello"], env)
        second = run_app_on_terminal(framework, ["hello"], env)
        reported(server, 2)
    assert (0, f"{NOTICE}\nhello world\nto stderr\n") == (first.code, first.stdout)
    assert (0, "hello world\nto stderr\n") == (second.code, second.stdout)
    assert (tmp_path / "notice-shown").exists()


@pytest.mark.parametrize(
    ("case", "extra"),
    [
        ("piped", {}),
        ("ci", {"CI": "true"}),
        ("opted out", {"HOST_NO_TELEMETRY": "1"}),
        ("ephemeral", {"IDSTITCH_RUNTIME": "ephemeral"}),
    ],
)
def test_the_notice_is_never_shown_piped_in_ci_ephemeral_or_opted_out(
    tmp_path: Path, case: str, extra: dict[str, str]
) -> None:
    """Stderr not a terminal, a CI variable (even with the runtime forced persistent), an
    ephemeral runtime, an opt-out: no notice, no marker; the output is the app's alone."""
    with CaptureServer() as server:
        env = host_env(tmp_path, server.url, HOST_NOTICE=NOTICE, **extra)
        if case == "piped":
            ran = run_app("click", ["hello"], env)
            shown = (ran.code, ran.stdout + ran.stderr)
        else:
            ran = run_app_on_terminal("click", ["hello"], env)
            shown = (ran.code, ran.stdout)
    assert (0, "hello world\nto stderr\n") == shown
    assert not (tmp_path / "notice-shown").exists()


def test_the_notice_given_to_open_is_shown_by_the_decorator_alone(tmp_path: Path) -> None:
    """An app not instrumented, with open(notice=...): its decorated command shows the notice
    as it starts (before its output); an undecorated command does not."""
    with CaptureServer() as server:
        env = host_env(tmp_path, server.url, HOST_WIRED="0", HOST_OPEN_NOTICE=NOTICE)
        undecorated = run_app_on_terminal("click", ["hello"], env)
        decorated = run_app_on_terminal("click", ["decorated"], env)
        reported(server, 1)
    assert (0, "hello world\nto stderr\n") == (undecorated.code, undecorated.stdout)
    assert (0, f"{NOTICE}\ndecorated\n") == (decorated.code, decorated.stdout)


def test_with_notice_before_sending_nothing_is_sent_until_it_was_shown(tmp_path: Path) -> None:
    """notice_before_sending: piped runs (no notice) send nothing and spend no alias (the
    login is stamped); the run that shows the notice on a terminal sends its event, and so
    does every later run, piped or not."""
    with CaptureServer() as server:
        env = host_env(tmp_path, server.url, HOST_NOTICE=NOTICE, HOST_NOTICE_FIRST="1")
        assert 0 == run_app("click", ["login", "user-a"], env).code
        assert 0 == run_app("click", ["hello"], env).code
        assert [] == server.paths
        shown = run_app_on_terminal("click", ["hello"], env)
        later = run_app("click", ["db", "push"], env)
        events = reported(server, 2)
    assert (0, f"{NOTICE}\nhello world\nto stderr\n") == (shown.code, shown.stdout)
    assert (0, "pushed\n") == (later.code, later.stdout)
    assert ["hello", "db push"] == [e["command"] for e in events]
    records = FileLog(tmp_path / "identity.jsonl").records(strict=True)
    assert [("genesis", None), ("login", False)] == [(r["kind"], r.get("alias")) for r in records]


_START = """
import sys, click, idstitch
stitch = idstitch.open(state_dir=sys.argv[1], runtime="persistent", env={})
before = sorted(m for m in ("idstitch.adapters.cli", "typer") if m in sys.modules)
@click.group()
def cli(): pass
@cli.command()
def hello(): click.echo("hello")
idstitch.instrument(cli, stitch)
cli.main(["hello"], standalone_mode=False)
heavy = ("posthog", "pydantic", "transitions", "orjson", "typer")
print(before, sorted(m for m in heavy if m in sys.modules))
"""


def test_the_wiring_costs_nothing_until_used_and_stays_light(tmp_path: Path) -> None:
    """A start that does not instrument loads neither the wiring nor typer; a wired click run
    loads none of posthog, pydantic, transitions, orjson or typer (bar B2)."""
    done = subprocess.run(
        [sys.executable, "-c", _START, str(tmp_path)],
        env=bare_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (0, "hello\n[] []\n", "") == (done.returncode, done.stdout, done.stderr)
