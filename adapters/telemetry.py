"""Ready-made ``telemetry status|enable|disable`` commands for click and typer CLIs.

One line adds them to a host CLI::

    cli.add_command(idstitch.click_telemetry(stitch))  # click
    app.add_typer(idstitch.typer_telemetry(stitch), name="telemetry")  # typer

Each subcommand prints :meth:`TelemetryStatus.describe` (``status`` reads,
``enable`` and ``disable`` record the user's choice first). Neither click
nor typer is imported until one of these functions is called.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    import click
    import typer
    from idstitch.service._consent import TelemetryStatus
    from idstitch.service._stitch import IdentityStitch

__all__ = ["click_telemetry", "typer_telemetry"]

_HELP = "Show or change whether this tool sends anonymous usage data."


def _say(status: TelemetryStatus, command: str) -> None:
    """Print the status for people, naming the host's own telemetry command in the hint."""
    import click

    click.echo(status.describe(command))


def _command_path(ctx: click.Context | typer.Context) -> str:
    """``mycli telemetry`` for ``mycli telemetry status``: the group's full path."""
    parent = ctx.parent
    return parent.command_path if parent is not None else ctx.command_path


def click_telemetry(stitch: IdentityStitch, *, name: str = "telemetry") -> click.Group:
    """A click group ``name`` with ``status``, ``enable`` and ``disable`` subcommands.

    Add it with ``cli.add_command(click_telemetry(stitch))``. Each prints one
    or two sentences saying whether telemetry is on and why; the commands
    never fail because of telemetry (exit 0).
    """
    import click

    @click.group(name=name, help=_HELP)
    def group() -> None:
        pass

    @group.command(help="Say whether telemetry is on, and why.")
    @click.pass_context
    def status(ctx: click.Context) -> None:
        _say(stitch.telemetry_status(), _command_path(ctx))

    @group.command(help="Turn telemetry on (an environment opt-out still wins).")
    @click.pass_context
    def enable(ctx: click.Context) -> None:
        _say(stitch.enable_telemetry(), _command_path(ctx))

    @group.command(help="Turn telemetry off, and delete the events not sent yet.")
    @click.pass_context
    def disable(ctx: click.Context) -> None:
        _say(stitch.disable_telemetry(), _command_path(ctx))

    return group


def typer_telemetry(stitch: IdentityStitch) -> typer.Typer:
    """A typer app with ``status``, ``enable`` and ``disable`` commands.

    Add it with ``app.add_typer(typer_telemetry(stitch), name="telemetry")``;
    the commands are those of :func:`click_telemetry`.
    """
    import typer

    app = typer.Typer(help=_HELP, no_args_is_help=True)

    @app.command(help="Say whether telemetry is on, and why.")
    def status(ctx: typer.Context) -> None:
        _say(stitch.telemetry_status(), _command_path(ctx))

    @app.command(help="Turn telemetry on (an environment opt-out still wins).")
    def enable(ctx: typer.Context) -> None:
        _say(stitch.enable_telemetry(), _command_path(ctx))

    @app.command(help="Turn telemetry off, and delete the events not sent yet.")
    def disable(ctx: typer.Context) -> None:
        _say(stitch.disable_telemetry(), _command_path(ctx))

    return app
