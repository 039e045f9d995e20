"""Small file-system primitives shared by the log, the lock and the snapshot.

Every file idstitch creates is 0600 and never opened through a symlink;
every directory it creates is 0700. Paths are plain strings here (``os``
only): this module is on the start-up path, and ``pathlib`` is not.
"""

from __future__ import annotations

import os

from ._line import HASH_KEY, UNENDED_TAIL, looks_torn, names_record

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import TypeAlias

    PathLike: TypeAlias = str | os.PathLike[str]

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "ends_with",
    "ensure_dir",
    "fsync_dir",
    "holds",
    "last_line",
    "list_folder",
    "open_file",
    "peek_end",
]

FILE_MODE = 0o600
DIR_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# No effect on regular files; a FIFO planted in the state dir then fails or
# reads empty instead of blocking the host CLI's start-up forever (R15).
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def open_file(path: PathLike, flags: int) -> int:
    """``os.open`` that never follows a final symlink, never blocks, and creates files 0600."""
    return os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, FILE_MODE)


def ensure_dir(path: PathLike) -> bool:
    """Create ``path`` (and parents) 0700 if missing; ``True`` if it was created."""
    if os.path.isdir(path):
        return False
    # Missing parents are made 0700 too: ``os.makedirs`` gives them 0777
    # less the umask, world-writable under ``umask 0``.
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        ensure_dir(parent)
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    return True


def list_folder(path: PathLike) -> list[str]:
    """The names in the directory ``path``; ``[]`` when it cannot be listed (or is missing)."""
    try:
        return os.listdir(path)
    except OSError:
        return []


def fsync_dir(path: PathLike) -> None:
    """Make the directory entries in ``path`` (a create, a rename) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The longest valid record line is under 2 KiB (two ids of 200 characters of
#: four UTF-8 bytes each, plus the rest): one page from the end holds it, and
#: the newline before it.
PEEK_WINDOW = 4096


def peek_end(path: PathLike) -> tuple[int, bytes]:
    """A file's size and its last line; ``(0, b"")`` if it does not exist.

    The last line is the last whole line, with its ``\\n``, unless the bytes
    after it are shaped as a whole record that lost only its ``\\n`` (they
    end in the ``"h"`` field, the last one of every record): that record is
    returned as it is on disk, without a line end, since the readers and
    appends take it as the log's last record (it is never a torn tail, and
    it may be the one the snapshot names). The size stays the file's size;
    that record's checkpoint offset is one more (where its line end goes).
    Only the shape is looked at: the caller compares the line with the
    record it expects. Anything else after the last line end (a torn
    write) is left out.

    Reads one window of :data:`PEEK_WINDOW` bytes from the end, which holds
    any valid record line whole (``b""`` for a longer last line, never a
    piece of it). For the start-up check of a log against its snapshot.
    """
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0, b""
    try:
        size = os.fstat(fd).st_size
        begin = max(0, size - PEEK_WINDOW)
        data = os.pread(fd, size - begin, begin)
    finally:
        os.close(fd)
    return size, last_line(data, cut=begin > 0)


def last_line(data: bytes, *, cut: bool = False) -> bytes:
    """The last line of a log's ``data`` as :func:`peek_end` finds it (``cut``: ``data``
    is the end of a longer file, so its first line may be a piece of one)."""
    start = data.rfind(b"\n") + 1
    if data.endswith(b'"}') and data.rfind(HASH_KEY, start) == len(data) - UNENDED_TAIL:
        end = len(data)  # a whole record that lost only its line end
    else:
        end, start = start, data.rfind(b"\n", 0, max(0, start - 1)) + 1
    if end == 0 or (start == 0 and cut):
        return b""
    return data[start:end]


def ends_with(path: PathLike, seq: int, h: str, offset: int | None = None) -> bool:
    """Whether the log at ``path`` ends with record ``seq``, whose hash is ``h``.

    That record is the log's last line (whole, or one that lost only its
    ``\\n``) and nothing follows it but a write a crash cut off (the next
    append removes that: :func:`~._line.looks_torn`). ``offset``: the record
    must also end there, at its checkpoint's offset (one byte past the
    file's end for a record that lost its ``\\n``). ``False`` for a missing,
    empty or unreadable log, and for a log with anything else after the
    record (another record, damage). The line is compared by its ``seq`` and
    hash only (:func:`~._line.names_record`), unparsed: for the start-up
    check of a log against its snapshot. Reads a window or two of
    :data:`PEEK_WINDOW` bytes, with the standard library only.
    """
    try:
        fd = open_file(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        if offset is None:
            begin = max(0, size - PEEK_WINDOW)
            data = os.pread(fd, size - begin, begin)
            line = last_line(data, cut=begin > 0)
            if not line:
                return False
            rest = data[data.rfind(line) + len(line) :]
            return names_record(line, seq, h) and (not rest or looks_torn(rest))
        if not _ends_at(fd, size, seq, h, offset):
            return False
        rest = os.pread(fd, PEEK_WINDOW + 1, offset) if offset < size else b""
    finally:
        os.close(fd)
    return len(rest) <= PEEK_WINDOW and (not rest or looks_torn(rest))


def holds(path: PathLike, seq: int, h: str, offset: int) -> bool:
    """Whether the record that ends at ``offset`` of the log at ``path`` is still record ``seq``,
    whose hash is ``h`` (what follows it is not looked at: records appended since are fine).

    ``False`` when the log was replaced meanwhile (another process's heal
    moves the old one aside), or is missing or shorter. Reads one window.
    """
    try:
        fd = open_file(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _ends_at(fd, os.fstat(fd).st_size, seq, h, offset)
    finally:
        os.close(fd)


def _ends_at(fd: int, size: int, seq: int, h: str, offset: int) -> bool:
    """Whether the line of the open log ``fd`` (of ``size`` bytes) that ends at ``offset`` is
    record ``seq`` with hash ``h``; at ``size + 1``, a last record that lost its ``\\n``."""
    unended = offset == size + 1
    if offset <= 0 or offset > size + 1:
        return False
    end = size if unended else offset
    begin = max(0, end - PEEK_WINDOW)
    data = os.pread(fd, end - begin, begin)
    if data.endswith(b"\n") == unended:
        return False
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    if start == 0 and begin > 0:
        return False  # longer than any record
    return names_record(data[start:], seq, h)
