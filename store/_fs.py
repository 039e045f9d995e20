"""Small file-system primitives shared by the log, the lock and the snapshot.

Every file idstitch creates is 0600 and never opened through a symlink;
every directory it creates is 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "ensure_dir", "fsync_dir", "open_file"]

FILE_MODE = 0o600
DIR_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def open_file(path: Path, flags: int) -> int:
    """``os.open`` that never follows a final symlink and creates files 0600."""
    return os.open(path, flags | _NOFOLLOW | _CLOEXEC, FILE_MODE)


def ensure_dir(path: Path) -> bool:
    """Create ``path`` (and parents) 0700 if missing; ``True`` if it was created."""
    if path.is_dir():
        return False
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return True


def fsync_dir(path: Path) -> None:
    """Make the directory entries in ``path`` (a create, a rename) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
