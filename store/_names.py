"""The names of the files in a state dir: the one place they are declared.

Everything else (the service, the doctor, the audit tool, the tests) takes
them from here, so a file's name is one fact known in one place.
"""

from __future__ import annotations

__all__ = ["LOCK_NAME", "LOG_NAME", "PENDING_NAME", "SNAPSHOT_NAME", "SPOOL_NAME"]

#: The identity log: append-only, hash-chained, the source of truth.
LOG_NAME = "identity.jsonl"
#: The snapshot: the log folded up to a named record (derived, rebuilt at will).
SNAPSHOT_NAME = "telemetry.json"
#: The cross-process lock file, never deleted (``FileLog`` puts it beside the log).
LOCK_NAME = "identity.lock"
#: Forgettings (a logout, a clear) not yet in the log: applied before anything else.
PENDING_NAME = "identity.pending"
#: The folder of events waiting for the sender (``idstitch.delivery``).
SPOOL_NAME = "spool"
