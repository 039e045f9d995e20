"""The snapshot file (``telemetry.json``): the folded state at a given ``seq``.

Written atomically: a uniquely named temporary file in the same directory
(``mkstemp``: ``O_EXCL``, 0600), write, ``fsync``, ``os.replace``, then
``fsync`` of the directory. Two writers in the same millisecond never share
a temporary path (rule R12), and a reader sees the old file or the new one,
never half of one.

Reading never raises: a missing, oversized, unreadable, corrupt or newer
snapshot is reported as such and the caller rebuilds from the log. The
reader uses only the standard library's JSON scanner, so it is cheap to
import on every start.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from ._fs import ensure_dir, fsync_dir, open_file

__all__ = [
    "MAX_SNAPSHOT_BYTES",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "SnapshotRead",
    "read_snapshot",
    "write_snapshot",
]

#: The marker a snapshot names itself with; a JSON object without it is foreign.
SNAPSHOT_FORMAT: Final = "idstitch-snapshot"
#: The snapshot layout version this build writes.
SNAPSHOT_VERSION: Final = 1
#: A snapshot is a few hundred bytes; anything far larger is refused unread.
MAX_SNAPSHOT_BYTES: Final = 64 * 1024

SnapshotStatus = Literal["ok", "missing", "foreign", "corrupt", "newer"]


@dataclass(frozen=True)
class SnapshotRead:
    """What :func:`read_snapshot` found.

    ``status``: ``ok`` (``data`` is an idstitch snapshot of this version),
    ``foreign`` (``data`` is another tool's JSON object), ``missing``,
    ``corrupt`` or ``newer`` (``problem`` says why; ``data`` is empty).
    """

    status: SnapshotStatus
    data: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


def read_snapshot(path: Path, *, max_bytes: int = MAX_SNAPSHOT_BYTES) -> SnapshotRead:
    """Read the snapshot at ``path``; never raises."""
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return SnapshotRead("missing")
    except OSError as exc:
        return SnapshotRead("corrupt", problem=f"cannot open: {exc.strerror or exc}")
    try:
        raw = os.read(fd, max_bytes + 1)
    except OSError as exc:
        return SnapshotRead("corrupt", problem=f"cannot read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        return SnapshotRead("corrupt", problem=f"larger than {max_bytes} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return SnapshotRead("corrupt", problem=f"not JSON: {type(exc).__name__}")
    if not isinstance(data, dict):
        return SnapshotRead("corrupt", problem="not a JSON object")
    if data.get("format") != SNAPSHOT_FORMAT:
        return SnapshotRead("foreign", data)
    version = data.get("version")
    if type(version) is not int:
        return SnapshotRead("corrupt", problem="no integer version")
    if version > SNAPSHOT_VERSION:
        return SnapshotRead("newer", problem=f"snapshot version {version} is newer than this build")
    if version < 1:
        return SnapshotRead("corrupt", problem=f"snapshot version {version} never existed")
    return SnapshotRead("ok", data)


def write_snapshot(path: Path, state: Mapping[str, object]) -> None:
    """Atomically replace the snapshot at ``path`` with ``state`` (plus its format marker).

    Raises :class:`OSError` on I/O faults; the old snapshot is then untouched
    and no temporary file is left behind.
    """
    payload = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, **state}
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    directory = path.parent
    created = ensure_dir(directory)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
    if created:
        fsync_dir(directory.parent)
