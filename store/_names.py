"""The names of the files in a state dir: the one place they are declared.

Everything else (the service, the doctor, the audit tool, the sender, the
benchmarks) takes them from here, so a file's name is one fact known in
one place: the files themselves, the pending forgettings, the files kept
aside by a heal (``<name>.<label>-<n>``, :mod:`._aside`) and the
temporary files of writes in progress (swept by :mod:`._files`).
Standard library only: this module is on the start-up path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Final

__all__ = [
    "CORRUPT",
    "DAMAGED",
    "LOCK_NAME",
    "LOG_NAME",
    "NOTICE_NAME",
    "PENDING_NAME",
    "PENDING_PREFIX",
    "PRE_IDSTITCH",
    "SNAPSHOT_ASIDE",
    "SNAPSHOT_NAME",
    "SPOOL_NAME",
    "is_pending_temporary",
    "kept_name",
    "kept_names",
    "kept_number",
    "pending_name",
    "pending_names",
    "published_temporary",
    "temporary_affixes",
]

#: The identity log: append-only, hash-chained, the source of truth.
LOG_NAME: Final = "identity.jsonl"
#: The snapshot: the log folded up to a named record (derived, rebuilt at will).
SNAPSHOT_NAME: Final = "telemetry.json"
#: The cross-process lock file, never deleted (``FileLog`` puts it beside the log).
LOCK_NAME: Final = "identity.lock"
#: Forgettings (a logout, a clear) not yet in the log: applied before anything else.
PENDING_NAME: Final = "identity.pending"
#: The folder of events waiting for the sender (``idstitch.delivery``).
SPOOL_NAME: Final = "spool"
#: The marker a shown first-run notice leaves (it holds the device id it was shown for).
NOTICE_NAME: Final = "notice-shown"

#: Each pending forgetting is a file of its own: ``identity.pending-<token>``.
PENDING_PREFIX: Final = PENDING_NAME + "-"

#: The label of a file kept aside because it was damaged (``identity.jsonl.damaged-1``).
DAMAGED: Final = "damaged"
#: The label of a snapshot kept aside because it could not be read as one.
CORRUPT: Final = "corrupt"
#: The label of another tool's state file, kept aside once its identity was adopted.
PRE_IDSTITCH: Final = "pre-idstitch"
#: What a snapshot the log does not account for is kept aside as, by its read status.
SNAPSHOT_ASIDE: Final = {"foreign": PRE_IDSTITCH, "corrupt": CORRUPT, "ok": DAMAGED}

_TEMPORARY_SUFFIX = ".tmp"


def pending_name(token: str) -> str:
    """The name of the pending forgetting ``token`` names: ``identity.pending-<token>``."""
    return PENDING_PREFIX + token


def pending_names(names: Iterable[str]) -> list[str]:
    """The pending forgettings among a state dir's ``names``, in name order."""
    return sorted(
        name
        for name in names
        if name.startswith(PENDING_PREFIX) and not name.endswith(_TEMPORARY_SUFFIX)
    )


def kept_name(name: str, label: str, number: int | str) -> str:
    """The name the file ``name`` is kept aside under: ``<name>.<label>-<number>`` (a report
    says ``"N"`` for any number)."""
    return f"{name}.{label}-{number}"


def kept_number(entry: str, name: str, label: str) -> int | None:
    """The ``n`` of ``entry`` when it is ``<name>.<label>-<n>`` as :func:`kept_name` writes
    it (ASCII digits, no leading zero); else ``None``."""
    prefix = f"{name}.{label}-"
    number = entry[len(prefix) :]
    if entry.startswith(prefix) and number.isdigit() and number.isascii() and number[0] != "0":
        return int(number)
    return None


def kept_names(names: Iterable[str]) -> list[str]:
    """The logs and snapshots kept aside among a state dir's ``names``, in name order."""
    return sorted(
        entry
        for entry in names
        if any(
            kept_number(entry, name, label) is not None
            for name in (LOG_NAME, SNAPSHOT_NAME)
            for label in (DAMAGED, CORRUPT, PRE_IDSTITCH)
        )
    )


def temporary_affixes(name: str) -> tuple[str, str]:
    """The prefix and suffix of the temporary files a write of the file ``name`` goes through.

    ``(".telemetry.json.", ".tmp")`` for ``telemetry.json``: hidden, and
    never the name of the file itself; a random part goes between them.
    """
    return f".{name}.", _TEMPORARY_SUFFIX


def published_temporary(name: str) -> str:
    """The temporary file the new file ``name`` is published through: ``.<name>.tmp``
    (``name`` is already unique: no random part)."""
    return f".{name}{_TEMPORARY_SUFFIX}"


def is_pending_temporary(entry: str) -> bool:
    """Whether ``entry`` is a pending forgetting's temporary file (:func:`published_temporary`)."""
    return entry.startswith(f".{PENDING_PREFIX}") and entry.endswith(_TEMPORARY_SUFFIX)
