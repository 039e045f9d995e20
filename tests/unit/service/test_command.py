"""The command wrapper's endings (service/_command.py) and the notice's gate, in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import idstitch
import pytest
from idstitch import RecordingSink
from idstitch.service._command import outcome
from support.cli_hosts import Terminal


def _abort_from_ctrl_c() -> BaseException:
    """click.prompt's Abort on Ctrl-C, as ``raise Abort() from None`` while handling it leaves
    it: the interrupt is its (suppressed) context."""
    abort = click.Abort()
    abort.__context__, abort.__suppress_context__ = KeyboardInterrupt(), True
    return abort


@pytest.mark.parametrize(
    ("ended", "seen", "expected"),
    [
        (None, None, {"exit_code": 0}),
        (SystemExit(3), None, {"exit_code": 3}),
        (SystemExit(None), None, {"exit_code": 0}),
        (SystemExit("bye"), None, {"exit_code": 1}),
        (ValueError("secret"), None, {"exit_code": 1, "error_type": "ValueError"}),
        (KeyboardInterrupt(), None, {"exit_code": 130, "interrupted": True}),
        (click.exceptions.Exit(4), None, {"exit_code": 4}),
        (None, click.exceptions.Exit(4), {"exit_code": 4}),
        (SystemExit(2), click.UsageError("x"), {"exit_code": 2, "error_type": "UsageError"}),
        (SystemExit(1), "abort", {"exit_code": 130, "interrupted": True}),
        (SystemExit(1), click.Abort(), {"exit_code": 1, "error_type": "Abort"}),
    ],
)
def test_how_a_command_ended_is_told_by_its_properties(
    ended: BaseException | None, seen: Any, expected: dict[str, Any]
) -> None:
    """Exit codes, the error's class (never its message), and Ctrl-C behind click's Abort."""
    behind = _abort_from_ctrl_c() if seen == "abort" else seen
    assert expected == outcome(ended, behind)


def test_nested_commands_of_one_stitch_send_one_event(tmp_path: Path) -> None:
    """A command inside another of the same stitch sends nothing; the outer one reports."""
    sink = RecordingSink()
    stitch = idstitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={})
    with stitch.command("outer"), stitch.command("inner"):
        pass
    with stitch.command("again"):
        pass
    assert ["outer", "again"] == [c.properties["command"] for c in sink.captures]


@pytest.mark.parametrize("asks", ["telemetry_status", "enable_telemetry", "disable_telemetry"])
def test_a_run_about_the_telemetry_choice_sends_no_event(tmp_path: Path, asks: str) -> None:
    """A command that reads or changes the user's telemetry choice is not usage: it sends no
    event (nor does the command around it), and the next command reports as before."""
    sink = RecordingSink()
    stitch = idstitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={})
    with stitch.command("telemetry"), stitch.command("inner"):
        getattr(stitch, asks)()
    stitch.enable_telemetry()  # outside any command: nothing to leave unreported
    with stitch.command("deploy"):
        pass
    assert ["deploy"] == [c.properties["command"] for c in sink.captures]


def test_held_events_flow_once_the_notice_is_shown(tmp_path: Path) -> None:
    """notice_before_sending: captures are dropped (False) and no alias is asked for until the
    notice is shown on a terminal; from then on they are sent, and the next open sends too."""
    sink = RecordingSink()

    def opened() -> idstitch.IdentityStitch:
        return idstitch.open(
            state_dir=tmp_path,
            runtime="persistent",
            sink=sink,
            env={},
            notice="we collect usage data",
            notice_before_sending=True,
        )

    stitch = opened()
    assert (False, True) == (stitch.capture("early"), stitch.login("user-a"))
    with Terminal() as terminal:
        assert stitch.first_run_notice(stream=terminal.stream)
        assert "we collect usage data\n" == terminal.shown()
    assert stitch.capture("after")
    assert opened().capture("next run")
    assert (["after", "next run"], []) == ([c.event for c in sink.captures], sink.aliases)
