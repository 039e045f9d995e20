"""Durable storage for the identity: the log, the snapshot and the process lock.

Nothing here decides anything about identity; :mod:`idstitch.machine` does.
Importing this package costs only the standard library.
"""

from __future__ import annotations

from ._fs import DIR_MODE, FILE_MODE
from ._lock import ProcessLock
from ._log import FileLog, IdentityLog, MemoryLog, Tail, TornTailRepair
from ._snapshot import (
    MAX_SNAPSHOT_BYTES,
    SNAPSHOT_FORMAT,
    SNAPSHOT_VERSION,
    SnapshotRead,
    read_snapshot,
    write_snapshot,
)

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "MAX_SNAPSHOT_BYTES",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "FileLog",
    "IdentityLog",
    "MemoryLog",
    "ProcessLock",
    "SnapshotRead",
    "Tail",
    "TornTailRepair",
    "read_snapshot",
    "write_snapshot",
]
