"""A typer CLI for the whole-app wiring tests: ``python typer_app.py COMMAND ...``.

The same commands as ``click_app.py`` (``hello``, ``fail``, ``quit N``,
``leave N``, ``interrupt``, ``decorated``, ``db push``), typer's way.
"""

from __future__ import annotations

import sys

import idstitch
import typer

from support.hosts.host_setup import FLUSH, NOTICE, WIRED, interrupt_now, stitch

app = typer.Typer(pretty_exceptions_enable=False)
db = typer.Typer()
app.add_typer(db, name="db")


@app.command()
def hello(name: str = "world") -> None:
    """Greet."""
    typer.echo(f"hello {name}")
    typer.echo("to stderr", err=True)


@app.command()
def fail() -> None:
    """Raise, with a message that must never be sent."""
    raise ValueError("secret-message")


@app.command()
def quit(code: int) -> None:
    """sys.exit(code)."""
    sys.exit(code)


@app.command()
def leave(code: int) -> None:
    """typer.Exit(code)."""
    raise typer.Exit(code)


@app.command()
def interrupt() -> None:
    """Ctrl-C in the middle of the work."""
    interrupt_now()


@app.command()
@stitch.command("decorated", flush_timeout=FLUSH)
def decorated() -> None:
    """Wired by the decorator as well."""
    typer.echo("decorated")


@db.command()
def push() -> None:
    """Push."""
    typer.echo("pushed")


if WIRED:
    idstitch.instrument(app, stitch, notice=NOTICE, flush_timeout=FLUSH)

if __name__ == "__main__":
    app()
