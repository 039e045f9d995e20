"""A small click CLI wired with idstitch through the spool: the host B6 and B7 run.

    python bench/_click_cli.py deploy TARGET

Its one command sees the user as an authenticated API call would (the first
run aliases the device, every later one is a steady start), prints a line
and reports ``cli_command_executed`` through ``@stitch.command``; at its
exit the spool is handed to a detached sender (or, with
``BENCH_DELIVERY=in_process``, delivered in-process for at most a second).
No HTTP client is imported: the command's own work is the same with
telemetry on and off.

Environment: ``BENCH_STATE_DIR`` (the state dir), ``BENCH_POSTHOG_HOST``
(where events go), ``BENCH_USER`` (default ``user-bench``),
``BENCH_DELIVERY`` (``auto``, ``detached``, ``in_process``), and the
library's own: ``DO_NOT_TRACK``, ``IDSTITCH_RUNTIME``, ``CI``.
"""

from __future__ import annotations

import os

import click
from idstitch.adapters.sinks import SpoolSink
from idstitch.machine import IdentityStitch

stitch = IdentityStitch.open(
    state_dir=os.environ["BENCH_STATE_DIR"],
    sink=SpoolSink(
        "phc_bench",
        host=os.environ["BENCH_POSTHOG_HOST"],
        delivery=os.environ.get("BENCH_DELIVERY", "auto"),
    ),
)


@click.group()
def cli() -> None:
    """A benchmark CLI."""


@cli.command()
@click.argument("target")
@stitch.command("deploy")
def deploy(target: str) -> None:
    """Pretend to deploy TARGET for the signed-in user."""
    stitch.observe_authenticated_response(os.environ.get("BENCH_USER", "user-bench"))
    click.echo(f"deployed {target}")


if __name__ == "__main__":
    cli()
