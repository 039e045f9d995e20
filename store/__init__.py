"""Durable storage for the identity: the log, the snapshot, the lock, the state dir's format.

Nothing here decides anything about identity; :mod:`idstitch.machine` does.
Each name loads on first access, so the start-up path pays only for the
snapshot reader.
"""

from __future__ import annotations

from idstitch.events._lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from ._aside import keep_aside, kept_files
    from ._files import publish, sweep_state_dir
    from ._fs import DIR_MODE, FILE_MODE
    from ._line import line_hash
    from ._lock import LOCK_WAIT, ProcessLock, at_fork_in_child
    from ._log import FileLog, MemoryLog, Tail
    from ._names import (
        LOCK_NAME,
        LOG_NAME,
        PENDING_NAME,
        SNAPSHOT_NAME,
        SPOOL_NAME,
        kept_names,
        pending_names,
        temporary_affixes,
    )
    from ._protocol import IdentityLog
    from ._repair import TornTailRepair
    from ._snapshot import (
        MAX_SNAPSHOT_BYTES,
        SNAPSHOT_FORMAT,
        SNAPSHOT_VERSION,
        SnapshotRead,
        read_snapshot,
        sweep_temporaries,
        write_snapshot,
    )

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "LOCK_NAME",
    "LOCK_WAIT",
    "LOG_NAME",
    "MAX_SNAPSHOT_BYTES",
    "PENDING_NAME",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_NAME",
    "SNAPSHOT_VERSION",
    "SPOOL_NAME",
    "FileLog",
    "IdentityLog",
    "MemoryLog",
    "ProcessLock",
    "SnapshotRead",
    "Tail",
    "TornTailRepair",
    "at_fork_in_child",
    "keep_aside",
    "kept_files",
    "kept_names",
    "line_hash",
    "pending_names",
    "publish",
    "read_snapshot",
    "sweep_state_dir",
    "sweep_temporaries",
    "temporary_affixes",
    "write_snapshot",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "._aside": ("keep_aside", "kept_files"),
        "._files": ("publish", "sweep_state_dir"),
        "._fs": ("DIR_MODE", "FILE_MODE"),
        "._line": ("line_hash",),
        "._lock": ("LOCK_WAIT", "ProcessLock", "at_fork_in_child"),
        "._log": ("FileLog", "MemoryLog", "Tail"),
        "._names": (
            "LOCK_NAME",
            "LOG_NAME",
            "PENDING_NAME",
            "SNAPSHOT_NAME",
            "SPOOL_NAME",
            "kept_names",
            "pending_names",
            "temporary_affixes",
        ),
        "._protocol": ("IdentityLog",),
        "._repair": ("TornTailRepair",),
        "._snapshot": (
            "MAX_SNAPSHOT_BYTES",
            "SNAPSHOT_FORMAT",
            "SNAPSHOT_VERSION",
            "SnapshotRead",
            "read_snapshot",
            "sweep_temporaries",
            "write_snapshot",
        ),
    },
)
