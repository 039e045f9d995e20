"""Small file-system primitives shared by the log, the lock and the snapshot.

Every file idstitch creates is 0600 and never opened through a symlink;
every directory it creates is 0700. Paths are plain strings here (``os``
only): this module is on the start-up path, and ``pathlib`` is not.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import TypeAlias

    PathLike: TypeAlias = str | os.PathLike[str]

__all__ = ["DIR_MODE", "FILE_MODE", "ensure_dir", "fsync_dir", "open_file", "peek_end"]

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
    """A file's size and its last complete line; ``(0, b"")`` if it does not exist.

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
    end = data.rfind(b"\n")
    if end < 0:
        return size, b""
    start = data.rfind(b"\n", 0, end) + 1
    if start == 0 and begin > 0:
        return size, b""
    return size, data[start : end + 1]
