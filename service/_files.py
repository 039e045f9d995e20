"""Reading a state dir's files whatever is planted there: never following a link, never
blocking on a FIFO."""

from __future__ import annotations

import os

__all__ = ["odd_kind", "read_whole"]


def odd_kind(path: str) -> str | None:
    """What ``path`` is when something other than a regular file is there (``None``: a
    regular file, or nothing)."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a directory" if stat.S_ISDIR(mode) else "a special file"


def read_whole(path: str, *, strict: bool = False) -> bytes:
    """The whole file, read without following a symlink or blocking on a FIFO.

    ``strict``: a missing file reads as empty and any other fault raises
    (a heal must never go on as if a log it cannot read were empty); else
    every fault reads as empty.
    """
    from idstitch.store._fs import open_file

    chunks = []
    try:
        fd = open_file(path, os.O_RDONLY)
        try:
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except FileNotFoundError:
        return b""
    except OSError:
        if strict:
            raise
        return b""
    return b"".join(chunks)
