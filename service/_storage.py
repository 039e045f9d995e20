"""Where the identity lives: the storage state machine, declared once, as data.

The identity table (:mod:`idstitch.machine._table`) says what an event does
to *who* the user is; this table says where that identity is kept while a
process runs. Every fall-back is a named edge here, so a degraded path is
a state anyone can see (``idstitch doctor``, :attr:`IdentityStitch.storage`)
rather than a flag buried in a branch.

States:

* ``healthy``: the state dir is read and written; changes are durable.
* ``read_only``: the state dir is read but this run writes nothing of its
  own (an ephemeral run, an opted-out user, a user whose recorded consent
  disables telemetry, a log written by a newer build). The writes allowed
  are forgetting a user the dir holds (R14) and the user's own telemetry
  choice (a ``consent`` record).
* ``deferred``: another process holds the lock (busy or stopped). Changes
  are made in memory; a logout or clear is written to a pending file that
  the next holder of the lock applies first (R16). The next change tries
  the lock again.
* ``healing``: damage was found; the damaged file is being kept aside and
  a new log started (log-format.md, "Healing"). Never a resting state.
* ``memory``: no state dir can be used (none, not ours, a disk fault): the
  identity lives in this process only. The next process tries again.

``opening`` is the pseudo-state before :meth:`IdentityStitch.open` has
decided. No module but this one names a storage transition.
"""

from __future__ import annotations

from idstitch.events._names import Names
from idstitch.events._voice import debug

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import ClassVar, Final

__all__ = [
    "OPENING",
    "STORAGE_TRANSITIONS",
    "Storage",
    "StorageMachine",
    "StorageTransition",
    "storage_mermaid",
]


class Storage(Names):
    """Where the identity is kept; each value is the name in lower case."""

    HEALTHY: ClassVar[Storage]
    READ_ONLY: ClassVar[Storage]
    DEFERRED: ClassVar[Storage]
    HEALING: ClassVar[Storage]
    MEMORY: ClassVar[Storage]


#: The pseudo-state before the state dir was looked at.
OPENING: Final = "opening"


class StorageTransition:
    """``source --event--> target``, with why it is taken."""

    __slots__ = ("event", "source", "target", "why")

    def __init__(self, source: str, event: str, target: Storage, why: str) -> None:
        self.source = source
        self.event = event
        self.target = target
        self.why = why

    def __repr__(self) -> str:
        return f"<{self.source} --{self.event}--> {self.target}>"


_T = StorageTransition
H, R, D, X, M = (
    Storage.HEALTHY,
    Storage.READ_ONLY,
    Storage.DEFERRED,
    Storage.HEALING,
    Storage.MEMORY,
)

#: Every storage transition. A change of storage state not listed here is a bug.
STORAGE_TRANSITIONS: Final[tuple[StorageTransition, ...]] = (
    _T(OPENING, "dir_ok", H, "a persistent run on a usable state dir"),
    _T(OPENING, "read_only", R, "ephemeral or opted out: read the dir, write nothing"),
    _T(OPENING, "newer_format", R, "L8: a newer build's files are never rewritten"),
    _T(OPENING, "no_dir", M, "no usable state dir (none, not this user's, unreadable)"),
    _T(OPENING, "lock_busy", D, "another process holds the lock while this one opens"),
    _T(OPENING, "damage", X, "the log or the snapshot cannot be trusted"),
    _T(H, "damage", X, "damage found under the lock, before a change"),
    _T(H, "lock_busy", D, "another process held the lock past the wait"),
    _T(H, "disk_fault", M, "a write failed (full or read-only disk, permissions)"),
    _T(H, "newer_format", R, "another process wrote a newer format meanwhile"),
    _T(D, "lock_taken", H, "the lock came free: pending changes applied, then this one"),
    _T(D, "lock_busy", D, "still held: the change waits in memory or the pending file"),
    _T(D, "disk_fault", M, "a write failed"),
    _T(X, "healed", H, "damaged file kept aside; a new log carries the trusted identity"),
    _T(X, "heal_failed", M, "the damaged file could not be kept aside or the new log written"),
    _T(R, "lock_busy", R, "a forgetting waits in the pending file"),
    _T(H, "consent_off", R, "the recorded consent disables telemetry: as opted out"),
    _T(D, "consent_off", R, "the recorded consent disables telemetry: as opted out"),
    _T(R, "consent_on", H, "the user enabled telemetry again, in the log, in a run it was off"),
    # A read-only run's failed forgetting stays read-only: it goes to a pending file.
)

_TABLE: Final = {(row.source, row.event): row for row in STORAGE_TRANSITIONS}


class StorageMachine:
    """The storage state of one process, moved only along :data:`STORAGE_TRANSITIONS`."""

    __slots__ = ("reason", "state")

    def __init__(self) -> None:
        self.state: Storage | str = OPENING
        #: Why the last transition was taken, in words (for reports and logs).
        self.reason = ""

    def fire(self, event: str, reason: str = "") -> Storage:
        """Take the ``event`` edge from the current state; ``AssertionError`` if there is none."""
        row = _TABLE.get((str(self.state), event))
        if row is None:
            raise AssertionError(f"no storage transition from {self.state} on {event}")
        if row.target != self.state or reason:
            debug("idstitch.service", "idstitch: storage %s --%s--> %s %s", *_shown(row, reason))
        self.state = row.target
        self.reason = reason or row.why
        return row.target

    @property
    def current(self) -> Storage:
        """The state, once :meth:`IdentityStitch.open` has decided it."""
        assert isinstance(self.state, Storage), "the storage state is decided when open returns"
        return self.state


def _shown(row: StorageTransition, reason: str) -> tuple[str, str, str, str]:
    return (str(row.source), row.event, str(row.target), f"({reason})" if reason else "")


def storage_mermaid() -> str:
    """The storage machine as a mermaid ``stateDiagram-v2``, drawn from the table."""
    edges: dict[tuple[str, str], list[str]] = {}
    for row in STORAGE_TRANSITIONS:
        source = "[*]" if row.source == OPENING else str(row.source)
        edges.setdefault((source, str(row.target)), []).append(row.event)
    lines = ["stateDiagram-v2"]
    for (source, target), events in edges.items():
        lines.append(f"    {source} --> {target}: {'<br/>'.join(events)}")
    return "\n".join(lines) + "\n"
