"""The default properties every capture carries, and the host's own over them (issue 14)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import idstitch
import pytest
from idstitch.adapters.runtime import Runtime, RuntimeVerdict
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import IdentityStitch
from idstitch.service._properties import default_properties, every_event, machine_arch
from support.service import open_stitch

#: This machine's architecture, as ``platform.machine()`` names it.
ARCH = os.uname().machine

CI = RuntimeVerdict(Runtime.EPHEMERAL, "ci", "CI variable GITHUB_ACTIONS", "GitHub Actions")
HOME = RuntimeVerdict(Runtime.PERSISTENT, "default", "no signal")


def test_the_defaults_in_ci_name_the_cli_the_runtime_and_its_provider() -> None:
    """Every documented default, in a GitHub Actions job of mycli 1.4.2."""
    expected = {
        "cli_name": "mycli",
        "cli_version": "1.4.2",
        "idstitch_version": idstitch.__version__,
        "arch": ARCH,
        "runtime": "ephemeral",
        "runtime_reason": "ci",
        "runtime_provider": "GitHub Actions",
        "is_tty": False,
    }
    assert expected == default_properties(
        app="mycli", app_version="1.4.2", verdict=CI, is_tty=False
    )


def test_what_is_unknown_is_left_out_not_sent_as_null() -> None:
    """No app name, no version, a reason naming no provider: those keys are absent."""
    expected = {
        "idstitch_version": idstitch.__version__,
        "arch": ARCH,
        "runtime": "persistent",
        "runtime_reason": "default",
        "is_tty": True,
    }
    assert expected == default_properties(app=None, app_version=None, verdict=HOME, is_tty=True)


def test_the_host_properties_win_over_the_defaults() -> None:
    """A host's property of the same name replaces the default; the others stay."""
    every = every_event(HOME, "mycli", None, True, {"plan": "pro", "cli_name": "my-cli"})
    expected = {
        **default_properties(app="mycli", app_version=None, verdict=HOME, is_tty=True),
        "cli_name": "my-cli",
        "plan": "pro",
    }
    assert expected == every


def test_the_properties_are_built_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first capture builds them; later ones reuse them without looking again."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    monkeypatch.setattr(sys, "stdout", _Terminal())
    stitch.capture("first")
    monkeypatch.setattr(sys, "stdout", None)  # were it looked at again, is_tty would change
    stitch.capture("second")
    assert [True, True] == [capture.properties["is_tty"] for capture in sink.captures]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [(_Terminal(), True), (io.StringIO(), False), (None, False)],
    ids=["terminal", "pipe", "missing"],
)
def test_is_tty_is_stdout_s_when_open_was_not_told(
    stdout: io.StringIO | None, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """is_tty: whether stdout is a terminal, at the first capture; a missing stdout is none."""
    monkeypatch.setattr(sys, "stdout", stdout)
    assert expected == every_event(HOME, None, None, None, {})["is_tty"]


def test_the_arch_is_unames_machine() -> None:
    """arch is os.uname().machine where there is one (not the platform module)."""
    assert ARCH == machine_arch()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PROCESSOR_ARCHITECTURE": "AMD64"}, "AMD64"),
        ({"PROCESSOR_ARCHITECTURE": "x86", "PROCESSOR_ARCHITEW6432": "ARM64"}, "ARM64"),
        ({"PROCESSOR_ARCHITECTURE": "secret-marker"}, None),
        ({}, None),
    ],
    ids=["amd64", "32-bit-python-on-arm64", "unknown-value", "unset"],
)
def test_without_uname_the_arch_is_windows_own_name_if_known(
    env: dict[str, str], expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has no os.uname: PROCESSOR_ARCHITECTURE names the arch, only if it is one."""
    monkeypatch.delattr(os, "uname")
    for name in ("PROCESSOR_ARCHITECTURE", "PROCESSOR_ARCHITEW6432"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert expected == machine_arch()


def test_a_capture_carries_defaults_then_host_then_event_properties(tmp_path: Path) -> None:
    """open(app, app_version, properties): the event's own win over the host's, which win
    over the defaults; $device_id is added as before."""
    sink = RecordingSink()
    stitch = IdentityStitch.open(
        "mycli",
        state_dir=tmp_path,
        sink=sink,
        env={"GITHUB_ACTIONS": "true"},
        root=str(tmp_path),
        is_tty=False,
        app_version="1.4.2",
        properties={"plan": "pro", "team": "core"},
    )
    assert stitch.capture("deploy", {"team": "infra", "runtime_reason": "mine"})
    expected = {
        **default_properties(app="mycli", app_version="1.4.2", verdict=CI, is_tty=False),
        "plan": "pro",
        "team": "infra",
        "runtime_reason": "mine",
        "$device_id": stitch.device_id,
    }
    assert [expected] == [capture.properties for capture in sink.captures]


def test_a_command_s_event_carries_the_defaults(tmp_path: Path) -> None:
    """cli_command_executed carries the defaults beside the command's own fields."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink, is_tty=True, app_version="2.0")
    with stitch.command("status"):
        pass
    [capture] = sink.captures
    shown = {k: v for k, v in capture.properties.items() if k != "duration_ms"}
    verdict = RuntimeVerdict(Runtime.PERSISTENT, "argument", "argument")
    expected = {
        **default_properties(app=None, app_version="2.0", verdict=verdict, is_tty=True),
        "command": "status",
        "exit_code": 0,
        "$device_id": stitch.device_id,
    }
    assert ("cli_command_executed", expected) == (capture.event, shown)


@pytest.mark.parametrize(
    ("env", "reason", "provider"),
    [
        ({"IDSTITCH_RUNTIME": "ephemeral"}, "override", None),
        ({"CIRCLECI": "true", "CI": "true"}, "ci", "CircleCI"),
        ({"CODESPACES": "true"}, "dev_container", "GitHub Codespaces"),
        ({"npm_command": "exec"}, "one_shot", "npx"),
        ({}, "default", None),
    ],
    ids=["override", "circleci", "codespaces", "npx", "default"],
)
def test_the_runtime_properties_are_the_open_s_verdict(
    env: dict[str, str], reason: str, provider: str | None, tmp_path: Path
) -> None:
    """runtime_reason and runtime_provider say what decided the open's runtime."""
    sink = RecordingSink()
    stitch = IdentityStitch.open(
        state_dir=tmp_path / "state", sink=sink, env=env, root=str(tmp_path), is_tty=True
    )
    stitch.capture("e")
    got = sink.captures[0].properties
    expected = (stitch.runtime.value, reason, provider)
    assert expected == (got["runtime"], got["runtime_reason"], got.get("runtime_provider"))
