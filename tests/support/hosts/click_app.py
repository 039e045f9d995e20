"""A click CLI for the whole-app wiring tests: ``python click_app.py COMMAND ...``.

Every way a command ends: ``hello`` (prints, exit 0), ``fail`` (an exception),
``quit N`` (``sys.exit``), ``leave N`` (``ctx.exit``), ``interrupt`` (SIGINT in
its work), ``ask`` (SIGINT at a prompt), ``decorated`` (the per-command
decorator too), ``db push`` (a nested group) and ``login USER``, ``tell`` (returns a value, for
``standalone_mode=False``). ``HOST_STANDALONE=0`` runs it with
``standalone_mode=False`` and prints what ``main`` returned or raised.
"""

from __future__ import annotations

import os
import sys

import click
import idstitch

from support.hosts.host_setup import FLUSH, NOTICE, WIRED, interrupt_now, interrupt_soon, stitch


@click.group()
def cli() -> None:
    """A host CLI."""


@cli.command()
@click.option("--name", default="world")
def hello(name: str) -> None:
    """Greet."""
    click.echo(f"hello {name}")
    click.echo("to stderr", err=True)


@cli.command()
def fail() -> None:
    """Raise, with a message that must never be sent."""
    raise ValueError("secret-message")


@cli.command()
@click.argument("code", type=int)
def quit(code: int) -> None:
    """sys.exit(code)."""
    sys.exit(code)


@cli.command()
@click.argument("code", type=int)
@click.pass_context
def leave(ctx: click.Context, code: int) -> None:
    """ctx.exit(code)."""
    ctx.exit(code)


@cli.command()
def interrupt() -> None:
    """Ctrl-C in the middle of the work."""
    interrupt_now()


@cli.command()
def ask() -> None:
    """Ctrl-C at a prompt."""
    interrupt_soon()
    click.prompt("name")


@cli.command()
@stitch.command("decorated", flush_timeout=FLUSH)
def decorated() -> None:
    """Wired by the decorator as well."""
    click.echo("decorated")


@cli.command()
@click.argument("user")
def login(user: str) -> None:
    """Log in as ``user`` (an alias, if the sink may send)."""
    stitch.login(user)


@cli.command()
def tell() -> str:
    """Return a value (seen with standalone_mode=False)."""
    return "told"


@cli.group()
def db() -> None:
    """Database commands."""


@db.command()
def push() -> None:
    """Push."""
    click.echo("pushed")


if WIRED:
    idstitch.instrument(cli, stitch, notice=NOTICE, flush_timeout=FLUSH)

if __name__ == "__main__":
    if os.environ.get("HOST_STANDALONE") == "0":
        try:
            print(f"returned {cli.main(standalone_mode=False)!r}")
        except BaseException as exc:  # noqa: BLE001 - what main raised is the output
            print(f"raised {type(exc).__name__}")
    else:
        cli()
