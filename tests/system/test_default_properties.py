"""The default properties on the wire: a real click CLI in a subprocess, the spool and the
real posthog client sending to the local capture server. The documented defaults arrive with
the values the run implies, and nothing personal does: no path, home dir, user or host name,
argument, environment value or error message (issue 14)."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import idstitch
import pytest
from idstitch.adapters.capture_server import CaptureServer
from support import SUPPORT

pytestmark = pytest.mark.processes

HOST = SUPPORT / "properties_host.py"

#: The properties idstitch documents (docs/integration.md), with the host's own one.
OURS = (
    "cli_name",
    "cli_version",
    "idstitch_version",
    "arch",
    "runtime",
    "runtime_reason",
    "runtime_provider",
    "is_tty",
    "edition",
    "command",
    "exit_code",
)

#: What the posthog client adds itself (idstitch does not repeat them).
THE_CLIENT_S = {"$os", "$os_version", "$python_version", "$python_runtime", "$lib", "$lib_version"}


def markers(tmp_path: Path) -> dict[str, str]:
    """A unique marker string for each personal thing a run has."""
    tag = uuid.uuid4().hex[:10]
    return {
        what: f"mk{what}{tag}"
        for what in ("home", "cwd", "user", "host", "arg", "error", "env", "ipc")
    }


def environment(
    mark: dict[str, str], home: Path, server: CaptureServer, **extra: str
) -> dict[str, str]:
    """A host's environment: home, user and host names made of markers, a variable of the
    user's holding one, and nothing else of this machine but PATH."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "USER": mark["user"],
        "LOGNAME": mark["user"],
        "USERNAME": mark["user"],
        "HOSTNAME": mark["host"],
        "MY_SECRET_SETTING": mark["env"],
        "LEAKCLI_POSTHOG_HOST": server.url,
        **extra,
    }


def run(args: list[str], env: dict[str, str], cwd: Path, *, tty: bool) -> tuple[int, str]:
    """Run the host CLI with ``args`` in ``cwd``, its stdout a terminal when ``tty``; its exit
    code and stderr."""
    if not tty:
        done = subprocess.run(
            [sys.executable, str(HOST), *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.returncode, done.stderr
    main, side = pty.openpty()
    try:
        child = subprocess.Popen(
            [sys.executable, str(HOST), *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=side,
            stderr=subprocess.PIPE,
        )
        os.close(side)
        side = -1
        _, stderr = child.communicate(timeout=60)
        return child.returncode, stderr.decode()
    finally:
        if side != -1:
            os.close(side)
        os.close(main)


def received(server: CaptureServer) -> str:
    """Everything PostHog received: each request's path and decoded body."""
    return json.dumps([server.paths, server.batches], ensure_ascii=False)


def tokens(messages: list[dict[str, Any]]) -> set[str]:
    """Every word of every string value the messages hold (split on what is no letter or
    digit)."""
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.update("".join(c if c.isalnum() else " " for c in value).split())

    walk(messages)
    return found


def test_nothing_personal_reaches_posthog_and_the_defaults_do(tmp_path: Path) -> None:
    """A CI job and a dev container's failing command: the documented defaults arrive with
    the values the run implies; no marker of home, cwd, user, host, argument, environment or
    error message is anywhere in what PostHog received, nor this machine's host name."""
    mark = markers(tmp_path)
    home = tmp_path / mark["home"]
    cwd = tmp_path / mark["cwd"] / "project"
    home.mkdir()
    cwd.mkdir(parents=True)
    (cwd / "why.txt").write_text(mark["error"], encoding="utf-8")
    with CaptureServer() as server:
        ci = environment(mark, home, server, CI="true", GITHUB_ACTIONS="true")
        deployed = run(["deploy", mark["arg"]], ci, cwd, tty=False)
        dev = environment(
            mark,
            home,
            server,
            REMOTE_CONTAINERS="true",
            REMOTE_CONTAINERS_IPC=f"/tmp/vscode-remote-containers-ipc-{mark['ipc']}.sock",
        )
        failed = run(["fail", mark["arg"]], dev, cwd, tty=True)
        messages = server.wait_for(2)
        seen = received(server)
    assert (0, 1) == (deployed[0], failed[0])
    assert f"RuntimeError: {mark['arg']}: {mark['error']}" in failed[1]  # the error said it
    base = {
        "cli_name": "leakcli",
        "cli_version": "3.1.4",
        "idstitch_version": idstitch.__version__,
        "arch": os.uname().machine,
        "edition": "community",
    }
    expected = [
        {
            **base,
            "runtime": "ephemeral",
            "runtime_reason": "ci",
            "runtime_provider": "GitHub Actions",
            "is_tty": False,
            "command": "deploy",
            "exit_code": 0,
        },
        {
            **base,
            "runtime": "persistent",
            "runtime_reason": "dev_container",
            "runtime_provider": "VS Code Dev Containers",
            "is_tty": True,
            "command": "fail",
            "exit_code": 1,
        },
    ]
    executed = [m["properties"] for m in messages if m["event"] == "cli_command_executed"]
    assert expected == [{k: p[k] for k in OURS if k in p} for p in executed]
    assert [THE_CLIENT_S, THE_CLIENT_S] == [THE_CLIENT_S & set(p) for p in executed]
    assert {} == {what: m for what, m in mark.items() if m in seen}
    assert socket.gethostname() not in tokens(messages)
