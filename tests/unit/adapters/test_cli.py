"""idstitch.instrument in this process: click's and typer's own test runners, a RecordingSink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import idstitch
import pytest
import typer
from click.testing import CliRunner
from idstitch import IdentityStitch, RecordingSink
from support.cli_hosts import run_report
from typer.testing import CliRunner as TyperRunner


def open_recording(tmp_path: Path) -> tuple[IdentityStitch, RecordingSink]:
    """A persistent stitch in ``tmp_path`` that records what it sends."""
    sink = RecordingSink()
    return idstitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={}), sink


def sent(sink: RecordingSink) -> list[dict[str, Any]]:
    """Each capture's event and what it says about its run."""
    return [run_report(c.event, dict(c.properties)) for c in sink.captures]


def click_app(stitch: IdentityStitch) -> click.Group:
    """A group with a decorated command and a nested group."""

    @click.group()
    def cli() -> None:
        """Root."""

    @cli.command()
    @stitch.command("deploy-decorated")
    def deploy() -> None:
        click.echo("deployed")

    @cli.group()
    def db() -> None:
        """Database."""

    @db.command()
    def push() -> None:
        click.echo("pushed")

    return cli


def test_a_decorated_command_inside_a_wired_app_sends_one_event(tmp_path: Path) -> None:
    """The decorator inside an instrumented run sends nothing: the run's event names the path."""
    stitch, sink = open_recording(tmp_path)
    cli = idstitch.instrument(click_app(stitch), stitch)
    result = CliRunner().invoke(cli, ["deploy"])
    assert (0, "deployed\n") == (result.exit_code, result.output)
    assert [{"event": "cli_command_executed", "command": "deploy", "exit_code": 0}] == sent(sink)


def test_a_second_instrument_call_replaces_the_settings(tmp_path: Path) -> None:
    """instrument() again on the same app: still one event per run, under the new event name."""
    stitch, sink = open_recording(tmp_path)
    cli = click_app(stitch)
    assert cli is idstitch.instrument(cli, stitch)
    idstitch.instrument(cli, stitch, event="cmd")
    assert 0 == CliRunner().invoke(cli, ["db", "push"]).exit_code
    assert [{"event": "cmd", "command": "db push", "exit_code": 0}] == sent(sink)


def test_typer_s_own_test_runner_is_reported_too(tmp_path: Path) -> None:
    """typer.testing.CliRunner builds the click command itself (get_command): still reported,
    for a group app and for a one-command app."""
    stitch, sink = open_recording(tmp_path)
    app, single = typer.Typer(), typer.Typer()

    @app.command()
    def hello() -> None:
        typer.echo("hello")

    @app.command()
    def bye() -> None:
        typer.echo("bye")

    @single.command()
    def only(fail: bool = False) -> None:
        if fail:
            raise typer.Exit(5)

    idstitch.instrument(app, stitch)
    idstitch.instrument(single, stitch)
    assert "bye\n" == TyperRunner().invoke(app, ["bye"]).output
    assert 5 == TyperRunner().invoke(single, ["--fail"]).exit_code
    assert [
        {"event": "cli_command_executed", "command": "bye", "exit_code": 0},
        {"event": "cli_command_executed", "command": "only", "exit_code": 5},
    ] == sent(sink)


@pytest.mark.parametrize("app", [None, "cli", object()])
def test_anything_but_a_click_or_typer_app_is_refused(tmp_path: Path, app: object) -> None:
    """A TypeError names what was given; nothing is wired."""
    stitch, _ = open_recording(tmp_path)
    with pytest.raises(TypeError, match="instrument\\(\\) takes a click command"):
        idstitch.instrument(app, stitch)
