"""Helpers for the identity service tests: deterministic clocks and device ids, one opener.

No pytest and no hypothesis here, so worker processes can import it cheaply.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from idstitch.adapters.runtime import Runtime
from idstitch.adapters.sinks import RecordingSink
from idstitch.events import Record
from idstitch.machine import IdentityStitch, ReplayResult, replay
from idstitch.store import FileLog

__all__ = [
    "DeviceIds",
    "first_response_worker",
    "log_records",
    "open_stitch",
    "replay_dir",
    "ticking_clock",
]


def ticking_clock(start: datetime | None = None) -> Callable[[], datetime]:
    """A clock that moves one millisecond per reading."""
    moments: Iterator[datetime] = (
        (start or datetime(2026, 11, 27, 17, tzinfo=UTC)) + timedelta(milliseconds=i)
        for i in itertools.count()
    )
    return lambda: next(moments)


class DeviceIds:
    """Mints predictable, never-repeating device ids and remembers every one it minted."""

    def __init__(self, prefix: str = "device") -> None:
        self.prefix = f"{prefix}-{os.getpid()}"
        self.minted: list[str] = []

    def __call__(self) -> str:
        device_id = f"{self.prefix}-{len(self.minted) + 1}"
        self.minted.append(device_id)
        return device_id


def open_stitch(
    state_dir: Path,
    *,
    runtime: Runtime | str | None = Runtime.PERSISTENT,
    sink: RecordingSink | None = None,
    env: dict[str, str] | None = None,
    devices: DeviceIds | None = None,
    **options: object,
) -> IdentityStitch:
    """Open a service on ``state_dir`` with a recording sink and an empty environment."""
    return IdentityStitch.open(
        state_dir=state_dir,
        runtime=runtime,
        sink=sink if sink is not None else RecordingSink(),
        env=env if env is not None else {},
        clock=ticking_clock(),
        new_device_id=devices,
        **options,  # type: ignore[arg-type]
    )


def log_records(state_dir: Path) -> list[Record]:
    """Every record of the state dir's log (raises if it is damaged)."""
    return list(FileLog(state_dir / "identity.jsonl").records(strict=True))


def replay_dir(state_dir: Path) -> ReplayResult:
    """Replay the state dir's log from scratch."""
    return replay(FileLog(state_dir / "identity.jsonl").records())


def first_response_worker(
    state_dir: str,
    user_id: str,
    barrier: Any,
    results: Any,
) -> None:
    """Open the state dir, wait for every sibling, observe one first response, report back."""
    sink = RecordingSink()
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=sink, env={})
    barrier.wait()
    stitch.observe_authenticated_response(user_id)
    results.put((user_id, len(sink.aliases), stitch.state.value, stitch.distinct_id))
