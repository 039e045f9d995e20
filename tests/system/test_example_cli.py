"""The example CLI in examples/mycli.py, run for real against a local API and capture server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.capture_server import CaptureServer
from support import REPO
from support.local_api import serve

pytestmark = pytest.mark.processes

EXAMPLE = REPO / "examples" / "mycli.py"
USERS = {"token-a": "user-a", "token-b": "user-b"}


class _Api(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        user = USERS.get(token)
        body = json.dumps({"id": user} if user else {"error": "bad token"}).encode()
        self.send_response(200 if user else 401)
        if user:
            self.send_header("X-User-Id", user)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api() -> Iterator[str]:
    """A local API whose /me names the token's user."""
    with serve(_Api) as url:
        yield url


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the example CLI with ``args``."""
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_env(home: Path, api: str, posthog: CaptureServer, **extra: str) -> dict[str, str]:
    """The example's environment: a home and state dir under ``home``, local API and PostHog."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "IDSTITCH_RUNTIME": "persistent",
        "MYCLI_API": api,
        "MYCLI_POSTHOG_HOST": posthog.url,
        "MYCLI_POSTHOG_KEY": "phc_test",
        **extra,
    }


def test_the_example_cli_attributes_its_commands(tmp_path: Path, api: str) -> None:
    """login aliases once; whoami is attributed; logout then login as B aliases a new device."""
    with CaptureServer() as posthog:
        env = cli_env(tmp_path, api, posthog)
        first = run(["login", "--token", "token-a"], env)
        # stderr is a pipe here, no terminal: the first-run notice is not shown
        assert (0, "logged in as user-a\n", "") == (first.returncode, first.stdout, first.stderr)
        second = run(["whoami", "--token", "token-a"], env)
        assert (0, "user-a\n", "") == (second.returncode, second.stdout, second.stderr)
        assert 0 == run(["logout"], env).returncode
        assert 0 == run(["login", "--token", "token-b"], env).returncode
        bad = run(["login", "--token", "nope"], env)
        assert 1 == bad.returncode
        messages = posthog.wait_for(7)
    seen = [
        (
            m["event"],
            m["distinct_id"],
            m["properties"].get("command"),
            m["properties"].get("exit_code"),
        )
        for m in messages
    ]
    aliases = [
        (m["distinct_id"], m["properties"]["alias"])
        for m in messages
        if m["event"] == "$create_alias"
    ]
    assert ["user-a", "user-b"] == [user for user, _ in aliases]
    assert aliases[0][1] != aliases[1][1]
    executed = [s for s in seen if s[0] == "cli_command_executed"]
    assert [
        ("cli_command_executed", "user-a", "login", 0),
        ("cli_command_executed", "user-a", "whoami", 0),
        ("cli_command_executed", aliases[1][1], "logout", 0),
        ("cli_command_executed", "user-b", "login", 0),
        ("cli_command_executed", "user-b", "login", 1),
    ] == executed


def test_the_example_cli_sends_nothing_when_opted_out(tmp_path: Path, api: str) -> None:
    """MYCLI_NO_TELEMETRY=1: the command works, no request reaches PostHog, no file is written."""
    with CaptureServer() as posthog:
        env = cli_env(tmp_path, api, posthog, MYCLI_NO_TELEMETRY="1")
        result = run(["login", "--token", "token-a"], env)
        assert (0, "logged in as user-a\n", "") == (result.returncode, result.stdout, result.stderr)
        assert ([], False) == (posthog.paths, (tmp_path / "state").exists())


def _spooled(home: Path) -> list[str]:
    """The spool segments left in the example's state dir (events not sent yet)."""
    spool = home / "state" / "mycli" / "spool"
    return sorted(p.name for p in spool.glob("*")) if spool.exists() else []


def test_the_example_cli_telemetry_commands_turn_sending_off_and_on(
    tmp_path: Path, api: str
) -> None:
    """mycli telemetry disable: later commands send nothing and leave no spool; enable: they
    send again; status says which, and why, each time."""
    with CaptureServer() as posthog:
        env = cli_env(tmp_path, api, posthog)
        before = run(["telemetry", "status"], env)
        disabled = run(["telemetry", "disable"], env)
        quiet = run(["whoami", "--token", "token-a"], env)
        status = run(["telemetry", "status"], env)
        spool_while_off = _spooled(tmp_path)
        paths_while_off = list(posthog.paths)
        enabled = run(["telemetry", "enable"], env)
        loud = run(["whoami", "--token", "token-a"], env)
        messages = posthog.wait_for(2)
    day = disabled.stdout.split(" on ")[1][:10]
    off = f"Telemetry is disabled: you turned it off on {day} (mycli telemetry enable turns "
    on = f"Telemetry is enabled: you turned it on on {day} (mycli telemetry disable turns "
    default = (
        "Telemetry is enabled (the default; no choice was recorded): "
        "mycli telemetry disable or DO_NOT_TRACK=1 turns it off.\n"
    )
    expected = [
        (0, default),
        (0, off + "it back on).\n"),
        (0, "user-a\n"),
        (0, off + "it back on).\n"),
        (0, on + "it off).\n"),
        (0, "user-a\n"),
    ]
    runs = [before, disabled, quiet, status, enabled, loud]
    assert expected == [(r.returncode, r.stdout) for r in runs]
    assert ([], []) == (spool_while_off, paths_while_off)
    sent = sorted((m["event"], m["distinct_id"]) for m in messages)
    assert [("$create_alias", "user-a"), ("cli_command_executed", "user-a")] == sent
