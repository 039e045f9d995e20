"""The identity service: the I/O that drives the pure machine.

It opens a state dir, trusts or heals what it finds there, takes the file
lock, appends to the log, writes the snapshot and hands the one alias to a
sink. Where the identity is kept (healthy, read-only, deferred, healing,
memory) is the storage machine of :mod:`._storage`, declared once as a
table. It imports nothing above its floor (``events``, ``store``,
``machine``); sinks and runtimes come in as arguments. Each name loads on
first access, so importing this package costs nothing.
"""

from __future__ import annotations

from idstitch.events._lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from ._consent import TelemetryStatus
    from ._doctor import Diagnosis, diagnose
    from ._dropped import record_dropped_alias
    from ._opening import OpenReport, open_report
    from ._runtime import Runtime, detect_runtime
    from ._sinks import NullSink
    from ._stitch import ALIAS_ATTEMPTS, LOCK_WAIT, IdentityStitch
    from ._storage import STORAGE_TRANSITIONS, Storage, storage_mermaid

__all__ = [
    "ALIAS_ATTEMPTS",
    "LOCK_WAIT",
    "STORAGE_TRANSITIONS",
    "Diagnosis",
    "IdentityStitch",
    "NullSink",
    "OpenReport",
    "Runtime",
    "Storage",
    "TelemetryStatus",
    "detect_runtime",
    "diagnose",
    "open_report",
    "record_dropped_alias",
    "storage_mermaid",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "._consent": ("TelemetryStatus",),
        "._doctor": ("Diagnosis", "diagnose"),
        "._dropped": ("record_dropped_alias",),
        "._opening": ("OpenReport", "open_report"),
        "._runtime": ("Runtime", "detect_runtime"),
        "._sinks": ("NullSink",),
        "._storage": ("STORAGE_TRANSITIONS", "Storage", "storage_mermaid"),
        "._stitch": ("ALIAS_ATTEMPTS", "LOCK_WAIT", "IdentityStitch"),
    },
)
