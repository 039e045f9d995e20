"""The identity log: an append-only, hash-chained file, and its in-memory twin.

Both logs speak the same interface (:class:`IdentityLog`) and the same
bytes: a :class:`MemoryLog` holds exactly the lines a :class:`FileLog`
would write, and both are read by the one checked reader of
:mod:`idstitch.events`.
"""

from __future__ import annotations

import _thread
import io
import os

from idstitch.events import LogDamagedError
from idstitch.events._codec import (
    START,
    Checkpoint,
    RecordReader,
    check_line,
    encode_record,
    parse_line,
)
from idstitch.events._values import record_fault
from idstitch.events._voice import warn

from ._fs import ends_with, ensure_dir, fsync_dir, open_file, peek_end
from ._line import line_hash
from ._lock import ProcessLock

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import IO

    from idstitch.events import Record

    from ._repair import TornTailRepair

__all__ = ["FileLog", "MemoryLog", "Tail"]


_TAIL_CHUNK = 8192


class Tail(tuple[Checkpoint, "Record | None", int, bool]):
    """The end of a log: the position after its last good record, that record
    (``None`` for an empty log) and the number of torn bytes after it.

    ``unended`` is true when that record is whole but lost only its line end
    (a ``$(cat log)`` round trip does that): it is a good record, never a
    torn tail, and ``checkpoint.offset`` is where its line end goes, one
    byte past the file's end. The next append (or
    :meth:`FileLog.complete_line`) writes that ``\\n``; ``torn`` is then 0.

    A named tuple, built without ``typing`` (start-up cost), as
    :class:`~idstitch.events.Checkpoint` is.
    """

    __slots__ = ()

    def __new__(
        cls, checkpoint: Checkpoint, record: Record | None, torn: int, unended: bool = False
    ) -> Tail:
        return super().__new__(cls, (checkpoint, record, torn, unended))

    @property
    def checkpoint(self) -> Checkpoint:
        """The position after the last good record."""
        return self[0]

    @property
    def record(self) -> Record | None:
        """The last good record (``None`` for an empty log)."""
        return self[1]

    @property
    def torn(self) -> int:
        """How many torn bytes follow it (the next append removes them)."""
        return self[2]

    @property
    def unended(self) -> bool:
        """Whether that record lost only its line end."""
        return self[3]

    def __repr__(self) -> str:
        checkpoint, record, torn, unended = self
        return f"Tail({checkpoint=!r}, {record=!r}, {torn=!r}, {unended=!r})"

    def __reduce__(self) -> tuple[type[Tail], tuple[Checkpoint, Record | None, int, bool]]:
        return Tail, (self[0], self[1], self[2], self[3])


def _validate(record: Record) -> None:
    """Refuse a record the pydantic models would refuse (checked without them: start-up cost)."""
    problem = record_fault(record)
    if problem is not None:
        raise ValueError(f"refusing to write an invalid record: {problem}")


def _tail_of(read_at: Callable[[int, int], bytes], size: int) -> Tail:
    """Find and check the last complete line of a log of ``size`` bytes.

    ``read_at(offset, length)`` reads from the log. Raises
    :class:`LogDamagedError` when the last line does not follow the one
    before it.
    """
    if size == 0:
        return Tail(START, None, 0)
    chunk = _TAIL_CHUNK
    while True:
        begin = max(0, size - chunk)
        data = read_at(begin, size - begin)
        end = data.rfind(b"\n") + 1  # just past the last complete line, 0 if none
        torn = len(data) - end
        lines_from = data.find(b"\n") + 1 if begin else 0  # the first line may be cut
        body = data[lines_from:end]
        if begin == 0 and end == 0:
            return _after_last_line(data, START)
        # Lines end at b"\n" only (bytes.splitlines would also split at a b"\r").
        complete = [line + b"\n" for line in body.split(b"\n")[:-1]]
        if len(complete) >= 2 or (begin == 0 and len(complete) == 1):
            break
        chunk *= 4
    last = complete[-1]
    last_offset = begin + end - len(last)
    if len(complete) >= 2:
        prev = complete[-2]
        try:
            prev_seq = int(parse_line(prev, light=True)["seq"])
        except (KeyError, TypeError, ValueError):  # orjson.JSONDecodeError is a ValueError
            # The line before the last is itself damaged: read from it.
            prev_seq, prev_h = -1, ""
        else:
            hash_bytes = line_hash(prev)
            if hash_bytes is None:
                prev_seq = -1  # no hash where one goes: the line before the last is damaged
            prev_h = (hash_bytes or b"").decode("ascii")
        if prev_seq < 0:
            return _tail_by_reading_all(read_at, size)
        after = Checkpoint(prev_seq, prev_h, last_offset)
    else:
        after = Checkpoint(START.seq, START.h, last_offset)
    record = check_line(last, after, light=True)
    checkpoint = Checkpoint(record["seq"], record["h"], begin + end)
    if torn:
        return _after_last_line(data[end:], checkpoint, record)
    return Tail(checkpoint, record, 0)


def _after_last_line(rest: bytes, after: Checkpoint, record: Record | None = None) -> Tail:
    """The tail of a log whose last line end is followed by ``rest`` (``record`` ends at ``after``).

    ``rest`` is either a whole record that lost only its line end (the tail
    is then that record, ``unended``), or a cut-off write (``torn``, removed
    by the next append); anything else raises :class:`LogDamagedError`. A
    whole record whose line end was overwritten, or any record that checks,
    is never taken for a torn tail: removing it would drop a record whose
    append returned.
    """
    try:
        unended = check_line(rest, after, light=True)
    except LogDamagedError as exc:
        if exc.cause != "torn-tail":
            raise
        return Tail(after, record, len(rest))
    checkpoint = Checkpoint(unended["seq"], unended["h"], after.offset + len(rest) + 1)
    return Tail(checkpoint, unended, 0, unended=True)


def _tail_by_reading_all(read_at: Callable[[int, int], bytes], size: int) -> Tail:
    """Slow path: read the whole log; raises :class:`LogDamagedError` at the first damage."""
    data = read_at(0, size)
    reader = RecordReader(lambda: io.BytesIO(data), light=True)
    last: Record | None = None
    for record in reader:
        last = record
    end = reader.checkpoint.offset
    return Tail(reader.checkpoint, last, max(0, size - end), unended=end > size)


def _lock_name(log: str) -> str:
    """The lock file's name for the log at ``log``: ``identity.jsonl`` -> ``identity.lock``.

    Its last suffix is replaced (added when it has none), as ``Path.with_suffix``
    does; a log itself named ``*.lock`` gets ``*.lock.lock``.
    """
    name = os.path.basename(log)
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if 0 < dot < len(name) - 1 else (name, "")
    return stem + (".lock.lock" if suffix == ".lock" else ".lock")


class FileLog:
    """The identity log at ``path`` (normally ``<state dir>/identity.jsonl``).

    Appends take an exclusive ``flock`` on the sibling lock file
    (``identity.lock``), write the whole line in one ``write`` to a file
    opened with ``O_APPEND``, then ``fsync``. The directory is created 0700
    and the files 0600; a symlink in place of the log is never followed.
    ``lock_timeout`` bounds the wait for another process's lock (``None``:
    wait as long as it takes); the identity service waits
    :data:`~idstitch.store.LOCK_WAIT` at most.

    Appends check the log's end and write with the standard library only;
    :meth:`records` reads with ``orjson`` unless ``light`` (the identity
    service reads light: the same verdicts, without ``orjson``'s import on
    a CLI's start).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float | None = None,
        light: bool = False,
    ) -> None:
        #: The log's path as given, as a string (``os`` works on it: no ``pathlib`` at start-up).
        self.file = os.fspath(path)
        #: The lock file's path, as a string.
        self.lock_file = os.path.join(os.path.dirname(self.file), _lock_name(self.file))
        self.light = light
        self._lock = ProcessLock(self.lock_file, timeout=lock_timeout)
        #: Torn tails that appends of this object removed, oldest first.
        self.repairs: list[TornTailRepair] = []
        #: The position after the record this object appended last (``None`` before any).
        self.end: Checkpoint | None = None

    @property
    def path(self) -> Path:
        """The log's path."""
        from pathlib import Path

        return Path(self.file)

    @property
    def lock_path(self) -> Path:
        """The lock file's path: beside the log, ``identity.lock`` for ``identity.jsonl``."""
        from pathlib import Path

        return Path(self.lock_file)

    def __repr__(self) -> str:
        return f"FileLog({self.file!r})"

    def exists(self) -> bool:
        """Whether the log file exists (it may still be empty)."""
        return os.path.exists(self.file)

    def locked(self) -> ProcessLock:
        """The exclusive lock; re-entrant, so :meth:`append` may be called while holding it."""
        return self._lock

    def _open_read(self) -> IO[bytes]:
        return os.fdopen(open_file(self.file, os.O_RDONLY), "rb")

    def records(self, *, strict: bool = False, since: Checkpoint = START) -> RecordReader:
        """Stream the records after ``since``, checked (``strict``: fully validated).

        Iterating raises :class:`OSError` if the file cannot be opened and
        :class:`LogDamagedError` at the first damaged record.
        """
        return RecordReader(self._open_read, since, strict=strict, light=self.light)

    def peek_end(self) -> tuple[int, bytes]:
        """The file's size and its last line, read with the standard library only.

        For the start-up check against the snapshot; ``(0, b"")`` if there is
        no log. The line is a whole line with its ``\\n``, or a last record
        that lost only its ``\\n`` (shape only, unchecked: it ends in its
        ``"h"`` field), returned as it is on disk; see :func:`.peek_end`.
        """
        return peek_end(self.file)

    def ends_with(self, seq: int, h: str, offset: int | None = None) -> bool:
        """Whether the log ends with record ``seq``, whose hash is ``h`` (a cut-off write after
        it aside; ``offset``: ending there), read from its end, unparsed; see :func:`.ends_with`.

        ``False`` for a missing or empty log, another last record, or damage after it.
        """
        return ends_with(self.file, seq, h, offset)

    def tail(self) -> Tail:
        """The last record, checked against the one before it; ``(START, None, 0)`` if empty."""
        try:
            fd = open_file(self.file, os.O_RDONLY)
        except FileNotFoundError:
            return Tail(START, None, 0)
        try:
            return _tail_of(lambda at, n: os.pread(fd, n, at), os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def append(self, kind: str, fields: Mapping[str, object], *, at: str) -> Record:
        """Append one ``kind`` record with ``fields`` at time ``at``; return it.

        Under the lock: check the last record, remove a torn tail (logged and
        kept in :attr:`repairs`) or write the line end a whole last record
        lost (never removing it), validate the new record, write it, fsync.
        Raises :class:`LogDamagedError` if the last record is damaged or newer
        (nothing is written), ``ValueError`` for an invalid record, and
        :class:`OSError` for I/O faults, a failed fsync included (the file is
        left as it was, but for a torn tail it removed or a line end it
        completed).
        """
        with self._lock:
            folder = os.path.dirname(self.file) or "."
            created = ensure_dir(folder)
            is_new = not os.path.exists(self.file)
            fd = open_file(self.file, os.O_RDWR | os.O_CREAT | os.O_APPEND)
            try:
                size = os.fstat(fd).st_size
                tail = _tail_of(lambda at, n: os.pread(fd, n, at), size)
                if tail.torn:
                    self._repair(fd, tail)
                elif tail.unended:
                    self._end_line(fd, tail)
                line, record = encode_record(tail.checkpoint, at=at, kind=kind, fields=fields)
                _validate(record)
                _write_synced(fd, line, restore_size=tail.checkpoint.offset)
                self.end = Checkpoint(
                    record["seq"], record["h"], tail.checkpoint.offset + len(line)
                )
            finally:
                os.close(fd)
            if created or is_new:
                fsync_dir(folder)
            return record

    def complete_line(self) -> bool:
        """Write the line end a whole last record lost; ``True`` if it wrote one.

        Under the lock, with an fsync; the record itself is kept byte for
        byte (it may be one the snapshot names, or one already acted on).
        ``False``, writing nothing, for a missing or empty log, a log whose
        last line is whole, or one ending in a torn tail (the next append
        removes that). Raises :class:`LogDamagedError` when the last record
        is damaged or newer and :class:`OSError` for I/O faults (nothing is
        written then).
        """
        with self._lock:
            try:
                fd = open_file(self.file, os.O_RDWR | os.O_APPEND)
            except FileNotFoundError:
                return False
            try:
                tail = _tail_of(lambda at, n: os.pread(fd, n, at), os.fstat(fd).st_size)
                if tail.unended:
                    self._end_line(fd, tail)
                return tail.unended
            finally:
                os.close(fd)

    def _end_line(self, fd: int, tail: Tail) -> None:
        """Write and fsync the ``\\n`` the whole last record of ``tail`` lost."""
        _write_synced(fd, b"\n", restore_size=tail.checkpoint.offset - 1)
        warn(
            "idstitch.store",
            "idstitch: completed the last line of %s (record seq %d had lost its line end; "
            "the record is kept as it was)",
            self.file,
            tail.checkpoint.seq,
        )

    def _repair(self, fd: int, tail: Tail) -> None:
        from ._repair import TornTailRepair

        offset = tail.checkpoint.offset
        os.ftruncate(fd, offset)
        os.fsync(fd)
        repair = TornTailRepair(self.file, offset, tail.torn, tail.checkpoint.seq + 1)
        self.repairs.append(repair)
        warn(
            "idstitch.store",
            "idstitch: removed %d torn bytes at offset %d of %s (record seq %d was never "
            "completed; every record before it is intact)",
            repair.length,
            repair.offset,
            self.file,
            repair.seq,
        )


def _write_synced(fd: int, line: bytes, *, restore_size: int) -> None:
    """One ``write`` of the whole line, then ``fsync``.

    A write refused or cut short, or a sync the disk fails, is undone (the
    file is cut back to ``restore_size`` bytes, as it was) and reported: a
    line whose append raised is never left in the log.
    """
    try:
        _check_whole(os.write(fd, line), len(line))
        os.fsync(fd)
    except OSError:
        os.ftruncate(fd, restore_size)
        raise


def _check_whole(written: int, length: int) -> None:
    if written != length:
        raise OSError(f"short write to the identity log ({written} of {length} bytes)")


class MemoryLog:
    """The identity log in memory: the same lines, checks and interface as :class:`FileLog`.

    For ephemeral runtimes (which write no file) and for tests. ``start`` lets
    the in-memory records continue the chain of a log read from disk (they
    then hold only what this process changed).
    """

    def __init__(self, start: Checkpoint = START, *, light: bool = False) -> None:
        self._lines: list[bytes] = []
        self._start = start
        self._size = 0
        self._last: Record | None = None
        self._checkpoint = Checkpoint(start.seq, start.h, 0)
        self._lock = _thread.RLock()
        #: Whether :meth:`records` reads with the standard library only (see :class:`FileLog`).
        self.light = light
        #: The position after the record appended last (``None`` before any).
        self.end: Checkpoint | None = None

    def __repr__(self) -> str:
        return f"MemoryLog({len(self._lines)} records)"

    def locked(self) -> _thread.RLock:
        """The log's thread lock (there is no other process to exclude)."""
        return self._lock

    def getvalue(self) -> bytes:
        """Every line, as a :class:`FileLog` would hold them."""
        with self._lock:
            return b"".join(self._lines)

    def records(self, *, strict: bool = False, since: Checkpoint = START) -> RecordReader:
        """Stream the records after ``since`` through the same checked reader as a file."""
        data = self.getvalue()
        if since == START:
            since = Checkpoint(self._start.seq, self._start.h, 0)
        return RecordReader(lambda: io.BytesIO(data), since, strict=strict, light=self.light)

    def tail(self) -> Tail:
        """The last record (always intact: nothing else writes here)."""
        with self._lock:
            return Tail(self._checkpoint, self._last, 0)

    def append(self, kind: str, fields: Mapping[str, object], *, at: str) -> Record:
        """Validate, chain and keep one record; return it. Raises ``ValueError`` if invalid."""
        with self._lock:
            line, record = encode_record(self._checkpoint, at=at, kind=kind, fields=fields)
            _validate(record)
            self._lines.append(line)
            self._size += len(line)
            self._last = record
            self._checkpoint = self.end = Checkpoint(record["seq"], record["h"], self._size)
            return record
