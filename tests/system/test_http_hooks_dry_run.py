"""The IDSTITCH_DEBUG dry run of a real host process says when its HTTP hook never saw the id."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from support.local_api import serve

pytestmark = pytest.mark.processes

#: A host: opens a persistent state dir with a SpoolSink, GETs the API 4 times (one a 401)
#: through httpx with the hook reading header argv[3], then closes the service or not
#: (argv[4]: "close", "exit", or "log": the host logs at DEBUG and does not close).
HOST = """
import logging
import sys

import httpx

import idstitch

if sys.argv[4] == "log":
    logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
stitch = idstitch.open(
    state_dir=sys.argv[1], runtime="persistent", sink=idstitch.SpoolSink("phc_test_key")
)
with httpx.Client(event_hooks=idstitch.httpx_hooks(stitch, sys.argv[3])) as client:
    for status in (200, 422, 401, 200):
        client.get(f"{sys.argv[2]}/{status}")
if sys.argv[4] == "close":
    stitch.close()
print(stitch.state.value)
"""


class _Api(BaseHTTPRequestHandler):
    """/<status>: that status, naming user-d in X-User-Id."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.send_response(int(self.path.strip("/")))
        self.send_header("X-User-Id", "user-d")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def api() -> Iterator[str]:
    """A local API naming user-d on every response."""
    with serve(_Api) as url:
        yield url


def _host(tmp_path: Path, api: str, header: str, end: str, debug: str | None) -> tuple[str, str]:
    """Run the host; its stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDSTITCH_")}
    env["TMPDIR"] = str(tmp_path)
    if debug is not None:
        env["IDSTITCH_DEBUG"] = debug
    done = subprocess.run(
        [sys.executable, "-c", HOST, str(tmp_path / "state"), api, header, end],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout, done.stderr


MISSPELLED = (
    "idstitch: the HTTP hook read 3 responses and none carried the header X-Usr-Id: "
    "is that the name your API sends the user id in?\n"
)


@pytest.mark.parametrize("end", ["close", "exit"])
def test_the_dry_run_says_a_misspelled_header_was_never_seen(
    tmp_path: Path, api: str, end: str
) -> None:
    """IDSTITCH_DEBUG=1: one line at close() or at the end of the process names the header and
    the responses read without it (the 401 is not counted)."""
    assert ("anonymous\n", MISSPELLED) == _host(tmp_path, api, "X-Usr-Id", end, "1")


def test_the_dry_run_is_silent_when_the_header_names_the_user(tmp_path: Path, api: str) -> None:
    """The right header name: the user is stamped (a dry run spends no alias), nothing said."""
    assert ("stamped\n", "") == _host(tmp_path, api, "X-User-Id", "exit", "1")


def test_without_the_dry_run_a_header_never_seen_prints_nothing(tmp_path: Path, api: str) -> None:
    """Without IDSTITCH_DEBUG the same host prints nothing: it is a debug message then."""
    assert ("anonymous\n", "") == _host(tmp_path, api, "X-Usr-Id", "exit", None)


def test_without_the_dry_run_it_is_a_debug_message(tmp_path: Path, api: str) -> None:
    """A host that logs at DEBUG gets the same line from the idstitch.adapters logger."""
    _, stderr = _host(tmp_path, api, "X-Usr-Id", "log", None)
    logged = [line for line in stderr.splitlines() if "X-Usr-Id" in line]
    assert [f"idstitch.adapters DEBUG {MISSPELLED.strip()}"] == logged
