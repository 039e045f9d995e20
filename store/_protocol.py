"""What the identity service needs from a log (kept apart so that ``typing`` is imported
only when it is used: the logs themselves are on a CLI's start-up path)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol

from idstitch.events import START, Checkpoint, Record, RecordReader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._log import Tail

__all__ = ["IdentityLog"]


class IdentityLog(Protocol):
    """What the identity service needs from a log: :class:`FileLog` and :class:`MemoryLog`."""

    #: The position after the record this object appended last (``None`` before any).
    end: Checkpoint | None

    def locked(self) -> AbstractContextManager[object]:
        """Hold the log exclusively (across threads and processes) for a read-decide-append."""
        ...

    def records(self, *, strict: bool = False, since: Checkpoint = START) -> RecordReader:
        """Stream the records after ``since``; stops at the first damaged one."""
        ...

    def tail(self) -> Tail:
        """The last record, checked against the one before it."""
        ...

    def append(self, kind: str, fields: Mapping[str, object], *, at: str) -> Record:
        """Validate, chain and durably append one record; return it."""
        ...
