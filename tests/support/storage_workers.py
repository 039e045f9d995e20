"""What the processes of the storage-health tests run (no pytest, no hypothesis: cheap to start).

Run as a script by the cold-process tests (``python storage_workers.py
ACTION STATE_DIR [USER]``, a fresh interpreter each time, as a CLI is):
each action prints one JSON line describing what the process saw.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import IdentityStitch

__all__ = ["fork_during_a_change", "main"]


def _report(stitch: IdentityStitch, **extra: Any) -> str:
    return json.dumps(
        {
            "state": stitch.state.value,
            "user": stitch.user_id,
            "device": stitch.device_id,
            "storage": str(stitch.storage),
            **extra,
        }
    )


def main(argv: list[str]) -> int:
    """``ACTION STATE_DIR [USER]``: login, logout or status, with the real environment."""
    action, state_dir = argv[0], argv[1]
    clock = _stopping_clock() if action == "stop-mid-login" else None
    stitch = IdentityStitch.open(
        state_dir=state_dir, runtime="persistent", sink=RecordingSink(), clock=clock
    )
    if action in ("login", "stop-mid-login"):
        stitch.login(argv[2])
    elif action == "logout":
        stitch.logout()
    elif action == "ready-logout":  # for the many-at-once test: wait for the go signal first
        sys.stdin.readline()
        started = time.monotonic()
        stitch.logout()
        print(_report(stitch, seconds=time.monotonic() - started), flush=True)
        return 0
    print(_report(stitch), flush=True)
    return 0


def _stopping_clock() -> Callable[[], datetime]:
    """A clock that stops this process (SIGSTOP, as Ctrl-Z does) the first time a change
    reads it: the process then holds the state dir's lock until it is continued."""
    import signal

    calls = 0

    def now() -> datetime:
        nonlocal calls
        calls += 1
        if calls == 1:
            os.kill(os.getpid(), signal.SIGSTOP)
        return datetime.now(UTC)

    return now


class _BlockingSink(RecordingSink):
    """A sink whose alias waits until told: a thread is then inside a change."""

    def __init__(self, inside: threading.Event, go_on: threading.Event) -> None:
        super().__init__()
        self.inside, self.go_on = inside, go_on

    def alias(self, *, user_id: str, device_id: str) -> bool:
        self.inside.set()
        self.go_on.wait(60)
        return super().alias(user_id=user_id, device_id=device_id)


def fork_during_a_change(state_dir: str, report: Connection) -> None:
    """Fork while another thread is inside a change; the child logs out and must not hang."""
    import warnings

    inside, go_on = threading.Event(), threading.Event()
    stitch = IdentityStitch.open(
        state_dir=state_dir, runtime="persistent", sink=_BlockingSink(inside, go_on), env={}
    )
    changer = threading.Thread(target=stitch.login, args=("user-a",))
    changer.start()
    inside.wait(60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on purpose
        pid = os.fork()
    if pid == 0:
        stitch.logout()
        report.send(("child", stitch.state.value, stitch.device_id, str(stitch.storage)))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    go_on.set()
    changer.join(60)
    report.send(("parent", os.waitstatus_to_exitcode(status), stitch.state.value))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
