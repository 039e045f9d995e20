"""Run the click and typer host apps (``support/hosts``) as real processes, piped or on a
pseudo-terminal, against a capture server."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, NamedTuple

from support import SUPPORT
from support.audit import _read_until_closed

#: What a run reports about itself (the default properties every event carries aside).
RUN_KEYS = ("command", "exit_code", "error_type", "help", "interrupted")


def run_report(event: str, properties: dict[str, Any]) -> dict[str, Any]:
    """An event and what it says about the run (its duration checked to be milliseconds)."""
    assert isinstance(properties["duration_ms"], int)
    return {"event": event} | {key: properties[key] for key in RUN_KEYS if key in properties}


#: The host apps, by framework.
HOSTS = {"click": SUPPORT / "hosts" / "click_app.py", "typer": SUPPORT / "hosts" / "typer_app.py"}


class Ran(NamedTuple):
    """A host run: its exit code and what it wrote (``stderr`` is empty on a terminal,
    where both streams show in ``stdout`` in the order written)."""

    code: int
    stdout: str
    stderr: str


def host_env(state: Path, url: str, **extra: str) -> dict[str, str]:
    """The host's environment: persistent, its state dir, the capture server, no CI variable."""
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT", "COVERAGE_PROCESS_START")
    return {
        **{k: os.environ[k] for k in keep if k in os.environ},
        "IDSTITCH_RUNTIME": "persistent",
        "HOST_STATE": str(state),
        "HOST_URL": url,
        "PYTHONPATH": str(SUPPORT.parent),  # the hosts import support.hosts.host_setup
        "TERM": "dumb",
        "NO_COLOR": "1",
        **extra,
    }


def run_app(
    framework: str, args: list[str], env: dict[str, str], stdin: int = subprocess.DEVNULL
) -> Ran:
    """Run the host app with ``args``, its streams piped (``stdin``: empty by default)."""
    done = subprocess.run(
        [sys.executable, str(HOSTS[framework]), *args],
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def run_app_on_terminal(framework: str, args: list[str], env: dict[str, str]) -> Ran:
    """Run the host app with stdout and stderr on one pseudo-terminal (stdin a pipe)."""
    leader, follower = pty.openpty()
    shown: list[bytes] = []
    with subprocess.Popen(
        [sys.executable, str(HOSTS[framework]), *args],
        stdin=subprocess.PIPE,
        stdout=follower,
        stderr=follower,
        env=env,
    ) as process:
        os.close(follower)
        reader = threading.Thread(target=lambda: shown.append(_read_until_closed(leader)))
        reader.start()
        code = process.wait(timeout=60)
        reader.join(timeout=60)
    os.close(leader)
    return Ran(code, b"".join(shown).decode().replace("\r\n", "\n"), "")


class Terminal:
    """A real pseudo-terminal in this process: :attr:`stream` is a text stream on it (its
    ``isatty()`` is true), :meth:`shown` what reached the terminal so far, :meth:`hang_up`
    closes the terminal's other end (a write then fails, as on a closed terminal)."""

    def __enter__(self) -> Terminal:
        self._leader, follower = pty.openpty()
        self.stream = open(follower, "w", encoding="utf-8")
        return self

    def shown(self) -> str:
        """What reached the terminal since the last look (its ``\\r\\n`` read as ``\\n``)."""
        self.stream.flush()
        os.set_blocking(self._leader, False)
        try:
            return os.read(self._leader, 65536).decode().replace("\r\n", "\n")
        except BlockingIOError:
            return ""

    def hang_up(self) -> None:
        """Close the terminal's leader: writes to :attr:`stream` fail from now on."""
        os.close(self._leader)
        self._leader = -1

    def __exit__(self, *exc: object) -> None:
        import contextlib

        with contextlib.suppress(OSError):
            self.stream.close()
        if self._leader >= 0:
            os.close(self._leader)
