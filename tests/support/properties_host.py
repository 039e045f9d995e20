"""A small click CLI wired with idstitch, as a host author writes it, for the properties test.

    python properties_host.py deploy TARGET     # prints "deployed TARGET"
    python properties_host.py fail TARGET       # raises RuntimeError("TARGET: <why.txt>")

Events go through the spool to ``LEAKCLI_POSTHOG_HOST``. The CLI names itself
``leakcli`` 3.1.4 and adds one property of its own (``edition``).
"""

from __future__ import annotations

import os

import click
import idstitch

stitch = idstitch.open(
    app="leakcli",
    app_version="3.1.4",
    properties={"edition": "community"},
    sink=idstitch.SpoolSink("phc_test", host=os.environ["LEAKCLI_POSTHOG_HOST"]),
)


@click.group()
def cli() -> None:
    """A CLI whose arguments, paths and errors must never reach PostHog."""


@cli.command()
@click.argument("target")
@stitch.command("deploy")
def deploy(target: str) -> None:
    """Deploy TARGET."""
    click.echo(f"deployed {target}")


@cli.command()
@click.argument("target")
@stitch.command("fail")
def fail(target: str) -> None:
    """Fail while reaching TARGET, for the reason ./why.txt gives."""
    with open("why.txt", encoding="utf-8") as why:
        raise RuntimeError(f"{target}: {why.read()}")


if __name__ == "__main__":
    cli()
