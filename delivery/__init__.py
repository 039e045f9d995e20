"""Delivery: a durable spool of events and the detached sender that empties it (rule R17).

The host appends each event to the spool in its state dir (one ``write``)
and returns; at exit a sender is started in the background, delivers the
spool to PostHog in batches with each event's own ``uuid`` and timestamp,
and exits. See ``docs/delivery.md``.
"""

from __future__ import annotations

from ._spool import MAX_AGE, MAX_BYTES, SPOOL_FOLDER, SpoolStatus, purge, read_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._sender import run_sender

__all__ = [
    "MAX_AGE",
    "MAX_BYTES",
    "SPOOL_FOLDER",
    "SpoolStatus",
    "purge",
    "read_status",
    "run_sender",
]


def __getattr__(name: str) -> object:
    if name == "run_sender":  # the sender's module is not needed on the host's path
        from ._sender import run_sender

        return run_sender
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
