"""mycli: a small command-line tool wired with idstitch (click + httpx + PostHog).

Run it against your own API and PostHog project::

    export MYCLI_API=https://api.example.com MYCLI_POSTHOG_KEY=phc_...
    python examples/mycli.py login --token T

Environment: ``MYCLI_API`` (the API's base URL, which answers ``GET /me`` with
the user's id in ``X-User-Id``), ``MYCLI_POSTHOG_KEY`` and ``MYCLI_POSTHOG_HOST``
(where events go), ``MYCLI_TOKEN`` (the bearer token), ``MYCLI_NO_TELEMETRY=1``
(opt out, as does ``DO_NOT_TRACK=1``).
"""

from __future__ import annotations

import os

import click
import httpx
import idstitch

# One identity per process, shared by every HTTP client and command.
stitch = idstitch.open(
    app="mycli",
    # Events go to a spool in the state dir; a sender started in the background at exit
    # delivers them, so no command waits for PostHog, online or offline (R17).
    sink=idstitch.SpoolSink(
        # No key (a development build): nothing is sent and no alias is spent (sink.sends).
        os.environ.get("MYCLI_POSTHOG_KEY", ""),
        host=os.environ.get("MYCLI_POSTHOG_HOST", "https://us.i.posthog.com"),
    ),
    opt_out_vars=("MYCLI_NO_TELEMETRY",),
    app_version="1.0.0",  # sent with every event as cli_version
    # Shown once per machine, on a terminal, never in CI, before the first command's output.
    notice=(
        "mycli sends anonymous usage data to improve the tool; "
        "`mycli telemetry disable` or MYCLI_NO_TELEMETRY=1 turns it off."
    ),
)
# Every authenticated response tells idstitch who the user is (R1, R5).
api = httpx.Client(
    base_url=os.environ.get("MYCLI_API", "https://api.example.com"),
    event_hooks=idstitch.httpx_hooks(stitch, "X-User-Id"),
    timeout=10,
)


def auth(token: str) -> dict[str, str]:
    """The bearer header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@click.group()
def cli() -> None:
    """A demo CLI."""


@cli.command()
@click.option("--token", envvar="MYCLI_TOKEN", required=True)
def login(token: str) -> None:
    """Check the token and remember who you are."""
    me = api.get("/me", headers=auth(token)).raise_for_status().json()
    stitch.login(me["id"])  # a no-op when the response hook already stitched (R6)
    click.echo(f"logged in as {me['id']}")


@cli.command()
@click.option("--token", envvar="MYCLI_TOKEN", required=True)
def whoami(token: str) -> None:
    """Ask the API who the token belongs to."""
    response = api.get("/me", headers=auth(token))
    click.echo(response.json().get("id", "nobody") if response.is_success else "nobody")


@cli.command()
def logout() -> None:
    """Forget the user; the next login starts on a fresh device (R7)."""
    stitch.logout()
    click.echo("logged out")


# `mycli telemetry status|enable|disable`: the user's own choice, kept in the state dir.
cli.add_command(idstitch.click_telemetry(stitch))
# One event per run for every command (`mycli login`, usage errors, --help, Ctrl-C), with its
# duration and exit code, and the notice above at the first run.
idstitch.instrument(cli, stitch)

if __name__ == "__main__":
    cli(prog_name="mycli")
