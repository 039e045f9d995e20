"""B3: what one identity change costs; B4: that steady-state starts write nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from idstitch.store import LOG_NAME

__all__ = ["change_cost", "dir_fingerprint", "steady_starts"]


def _fresh(root: Path, name: str) -> Path:
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def change_cost(root: Path, runs: int, warmup: int = 2) -> dict[str, list[float]]:
    """Time ``login`` on a fresh persistent state dir against one bare ``write`` + ``fsync``.

    Each round opens a new state dir (the genesis record is written then,
    untimed), times one ``login`` (the lock, the append and its fsync, the
    snapshot replaced and the directory fsynced), then writes the very line
    that login appended to a new file beside it and times ``write`` +
    ``fsync``. Returns seconds per round for ``change`` and ``write_fsync``.
    """
    from idstitch.adapters.sinks import NullSink
    from idstitch.machine import IdentityStitch

    times: dict[str, list[float]] = {"change": [], "write_fsync": []}
    for round_ in range(warmup + runs):
        folder = _fresh(root, f"change-{round_}")
        stitch = IdentityStitch.open(
            state_dir=folder, runtime="persistent", sink=NullSink(), env={}
        )
        size_before = (folder / LOG_NAME).stat().st_size
        started = time.perf_counter()
        stitch.login("user-a")
        change = time.perf_counter() - started
        with (folder / LOG_NAME).open("rb") as log:
            log.seek(size_before)
            line = log.read()
        if not stitch.persisting or line.count(b"\n") != 1:
            raise RuntimeError(f"login did not append exactly one record to {folder}: {line!r}")
        fd = os.open(folder / "bare.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            started = time.perf_counter()
            os.write(fd, line)
            os.fsync(fd)
            bare = time.perf_counter() - started
        finally:
            os.close(fd)
        shutil.rmtree(folder)
        if round_ >= warmup:
            times["change"].append(change)
            times["write_fsync"].append(bare)
    return times


def dir_fingerprint(folder: Path) -> dict[str, str]:
    """Every file of ``folder`` with a hash of its bytes (to prove nothing was written)."""
    return {
        entry.name: hashlib.blake2b(entry.read_bytes(), digest_size=16).hexdigest()
        for entry in sorted(folder.iterdir())
        if entry.is_file()
    }


def steady_starts(state_dir: Path, user: str, starts: int) -> dict[str, Any]:
    """``starts`` in-process steady-state starts; what they wrote and how long one took."""
    from idstitch.machine import IdentityStitch

    before = dir_fingerprint(state_dir)
    env = {"IDSTITCH_RUNTIME": "persistent"}
    started = time.perf_counter()
    for _ in range(starts):
        stitch = IdentityStitch.open(state_dir=state_dir, env=env)
        stitch.distinct_id  # noqa: B018 - reading it is the point
        stitch.observe_authenticated_response(user)
    elapsed = time.perf_counter() - started
    after = dir_fingerprint(state_dir)
    changed = sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
    return {
        "starts": starts,
        "changed_files": changed,
        "seconds_per_start": elapsed / starts,
        "distinct_id": stitch.distinct_id if starts else None,
    }
