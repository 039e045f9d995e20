"""Durable storage for the identity: the log, the snapshot and the process lock.

Nothing here decides anything about identity; :mod:`idstitch.machine` does.
Each name loads on first access, so the start-up path pays only for the
snapshot reader.
"""

from __future__ import annotations

from idstitch.events._lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    {
        "._fs": ("DIR_MODE", "FILE_MODE"),
        "._lock": ("ProcessLock",),
        "._log": ("FileLog", "IdentityLog", "MemoryLog", "Tail", "TornTailRepair"),
        "._snapshot": (
            "MAX_SNAPSHOT_BYTES",
            "SNAPSHOT_FORMAT",
            "SNAPSHOT_VERSION",
            "SnapshotRead",
            "read_snapshot",
            "write_snapshot",
        ),
    },
)
