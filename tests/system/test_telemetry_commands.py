"""The ready-made telemetry commands in real click and typer apps, run as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

_OPEN = """
import os
import idstitch

stitch = idstitch.open(app="tool", state_dir=os.environ["TOOL_STATE"], runtime="persistent")
"""

APPS = {
    "click": _OPEN
    + """
import click

@click.group()
def cli():
    "A tool."

cli.add_command(idstitch.click_telemetry(stitch))
cli(prog_name="tool")
""",
    "typer": _OPEN
    + """
import typer

app = typer.Typer()

@app.callback()
def main():
    "A tool."

app.add_typer(idstitch.typer_telemetry(stitch), name="telemetry")
app(prog_name="tool")
""",
}


def _run(script: Path, state: Path, *args: str, **env: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, str(script), *args],
        env={"PATH": os.environ.get("PATH", ""), "TOOL_STATE": str(state), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("framework", list(APPS))
def test_the_telemetry_commands_show_and_change_the_choice(tmp_path: Path, framework: str) -> None:
    """status, disable, status, enable, status, and status under DO_NOT_TRACK: each exits 0 and
    prints the one describe() sentence naming the app's own command."""
    script = tmp_path / "tool.py"
    script.write_text(APPS[framework])
    state = tmp_path / "state"
    outputs = [
        _run(script, state, "telemetry", "status"),
        _run(script, state, "telemetry", "disable"),
        _run(script, state, "telemetry", "status"),
        _run(script, state, "telemetry", "enable"),
        _run(script, state, "telemetry", "status", DO_NOT_TRACK="1"),
    ]
    day = outputs[1][1].split(" on ")[1][:10]
    off = f"Telemetry is disabled: you turned it off on {day} (tool telemetry enable turns it "
    expected = [
        (
            0,
            (
                "Telemetry is enabled (the default; no choice was recorded): "
                "tool telemetry disable or DO_NOT_TRACK=1 turns it off.\n"
            ),
        ),
        (0, off + "back on).\n"),
        (0, off + "back on).\n"),
        (
            0,
            (
                f"Telemetry is enabled: you turned it on on {day} "
                "(tool telemetry disable turns it off).\n"
            ),
        ),
        (
            0,
            (
                "Telemetry is disabled: DO_NOT_TRACK is set in the environment, which wins over "
                f"any choice recorded (you enabled it on {day}).\n"
            ),
        ),
    ]
    assert expected == outputs


@pytest.mark.parametrize("framework", list(APPS))
def test_the_telemetry_group_lists_its_three_commands(tmp_path: Path, framework: str) -> None:
    """``tool telemetry --help`` lists status, enable and disable with their help."""
    script = tmp_path / "tool.py"
    script.write_text(APPS[framework])
    code, text = _run(script, tmp_path / "state", "telemetry", "--help", COLUMNS="200")
    listed = [word for word in ("status", "enable", "disable") if f" {word} " in text]
    assert (0, ["status", "enable", "disable"]) == (code, listed)
    assert "Turn telemetry off, and delete the events not sent yet." in text


def test_importing_idstitch_and_its_command_builders_loads_neither_click_nor_typer() -> None:
    """The builders import click or typer only when called: a host's start pays nothing."""
    code = (
        "import sys, idstitch\n"
        "idstitch.click_telemetry, idstitch.typer_telemetry\n"
        "print(sorted(m for m in ('click', 'typer') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "[]\n" == result.stdout
