"""Forgettings survive real cold processes: a CLI stopped with Ctrl-Z while holding the lock,
and 64 CLIs logging out at once. Fresh interpreters (as a CLI's every run is); no sleeps:
each test waits for a state it can observe, within a bound."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import SUPPORT
from support.service import log_records

pytestmark = pytest.mark.processes

WORKER = str(SUPPORT / "storage_workers.py")
ENV = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "IDSTITCH_RUNTIME")}


def _run(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, WORKER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def _wait_until_stopped(process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not _stopped(process.pid):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the CLI never reached its change"
        time.sleep(0.01)


def test_a_cli_stopped_mid_change_never_loses_a_later_logout(tmp_path: Path) -> None:
    """R16: a CLI is stopped (SIGSTOP) inside a login, holding the lock. A logout in another CLI
    returns, the next CLI opens logged out, and once the stopped one continues and ends,
    the log ends logged out: the pending logout is applied after its login."""
    assert "aliased" == _run("login", str(tmp_path), "user-a")["state"]
    stopped = subprocess.Popen(
        [sys.executable, WORKER, "stop-mid-login", str(tmp_path), "user-b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        _wait_until_stopped(stopped)
        logout = _run("logout", str(tmp_path))
        assert ("reset", "deferred") == (logout["state"], logout["storage"])
        status = _run("status", str(tmp_path))
        assert (None, logout["device"]) == (status["user"], status["device"])
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
        out, err = stopped.communicate(timeout=120)
    assert 0 == stopped.returncode, err
    assert "user-b" == json.loads(out)["user"]
    final = _run("status", str(tmp_path))
    assert (None, "healthy") == (final["user"], final["storage"])
    kinds = [(r["kind"], r.get("user_id"), r.get("new_device_id")) for r in log_records(tmp_path)]
    assert ("logout", None, logout["device"]) == kinds[-1]
    assert "user-b" in [user for _, user, _ in kinds]


@pytest.mark.slow
def test_64_cold_clis_logging_out_at_once_lose_no_logout(tmp_path: Path) -> None:
    """R16: 64 fresh interpreters log out at the same moment; each logout is in the log or a
    pending file when it returns, and the next CLI opens with no user."""
    assert "aliased" == _run("login", str(tmp_path), "user-a")["state"]
    clis = [
        subprocess.Popen(
            [sys.executable, WORKER, "ready-logout", str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for _ in range(64)
    ]
    for cli in clis:
        assert cli.stdin is not None
        cli.stdin.write("go\n")
        cli.stdin.flush()
    reports = []
    for cli in clis:
        out, err = cli.communicate(timeout=300)
        assert 0 == cli.returncode, err
        reports.append(json.loads(out))
    devices = {report["device"] for report in reports}
    assert 64 == len(devices)
    logged = {r.get("new_device_id") for r in log_records(tmp_path)}
    pending = "".join(p.read_text() for p in tmp_path.glob("identity.pending-*"))
    assert set() == {device for device in devices if device not in logged and device not in pending}
    final = _run("status", str(tmp_path))
    assert (None, "healthy") == (final["user"], final["storage"])
    assert [] == list(tmp_path.glob("identity.pending-*"))
