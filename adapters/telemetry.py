"""Ready-made ``telemetry status|enable|disable`` commands for click and typer CLIs.

One line adds them to a host CLI::

    cli.add_command(idstitch.click_telemetry(stitch))  # click
    app.add_typer(idstitch.typer_telemetry(stitch), name="telemetry")  # typer

Each subcommand prints :meth:`TelemetryStatus.describe` (``status`` reads,
``enable`` and ``disable`` record the user's choice first). Neither click
nor typer is imported until one of these functions is called, and each
function imports only its own framework (typer carries its own click).

The annotations are evaluated (no ``from __future__ import annotations``):
typer reads a command's parameters from them, and its ``Context`` is only
known inside :func:`typer_telemetry`.
"""

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable

    import click
    import typer
    from idstitch.service._consent import TelemetryStatus
    from idstitch.service._stitch import IdentityStitch

__all__ = ["click_telemetry", "typer_telemetry"]

_HELP = "Show or change whether this tool sends anonymous usage data."
_STATUS = "Say whether telemetry is on, and why."
_ENABLE = "Turn telemetry on (an environment opt-out still wins)."
_DISABLE = "Turn telemetry off, and delete the events not sent yet."


def _say(status: "TelemetryStatus", path: str, echo: "Callable[[str], object]") -> None:
    """Print the status for people, naming the host's own telemetry command: ``path`` is the
    running group's full path (``mycli telemetry`` for ``mycli telemetry status``)."""
    echo(status.describe(path))


def click_telemetry(stitch: "IdentityStitch", *, name: str = "telemetry") -> "click.Group":
    """A click group ``name`` with ``status``, ``enable`` and ``disable`` subcommands.

    Add it with ``cli.add_command(click_telemetry(stitch))``. Each prints one
    or two sentences saying whether telemetry is on and why; the commands
    never fail because of telemetry (exit 0).
    """
    import click

    def path(ctx: click.Context) -> str:
        return ctx.parent.command_path if ctx.parent is not None else ctx.command_path

    @click.group(name=name, help=_HELP)
    def group() -> None:
        pass

    @group.command(help=_STATUS)
    @click.pass_context
    def status(ctx: click.Context) -> None:
        _say(stitch.telemetry_status(), path(ctx), click.echo)

    @group.command(help=_ENABLE)
    @click.pass_context
    def enable(ctx: click.Context) -> None:
        _say(stitch.enable_telemetry(), path(ctx), click.echo)

    @group.command(help=_DISABLE)
    @click.pass_context
    def disable(ctx: click.Context) -> None:
        _say(stitch.disable_telemetry(), path(ctx), click.echo)

    return group


def typer_telemetry(stitch: "IdentityStitch") -> "typer.Typer":
    """A typer app with ``status``, ``enable`` and ``disable`` commands.

    Add it with ``app.add_typer(typer_telemetry(stitch), name="telemetry")``;
    the commands are those of :func:`click_telemetry`.
    """
    import typer

    def path(ctx: typer.Context) -> str:
        return ctx.parent.command_path if ctx.parent is not None else ctx.command_path

    app = typer.Typer(help=_HELP, no_args_is_help=True)

    @app.command(help=_STATUS)
    def status(ctx: typer.Context) -> None:
        _say(stitch.telemetry_status(), path(ctx), typer.echo)

    @app.command(help=_ENABLE)
    def enable(ctx: typer.Context) -> None:
        _say(stitch.enable_telemetry(), path(ctx), typer.echo)

    @app.command(help=_DISABLE)
    def disable(ctx: typer.Context) -> None:
        _say(stitch.disable_telemetry(), path(ctx), typer.echo)

    return app
