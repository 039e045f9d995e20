"""Keeping a damaged file aside, byte for byte, under a name that says so.

A damaged log or snapshot is never rewritten in place and never deleted:
healing moves it to ``<name>.<label>-<n>`` (``identity.jsonl.damaged-1``,
then ``-2``, ...), taking the first free ``n`` and never replacing a file
already kept, even when several processes keep files at once.

The move is ``os.link`` to the new name (which fails if that name exists:
another keeper took it, so the next ``n`` is tried), then ``os.unlink`` of
the old one. Where hard links are refused (some filesystems, a directory),
it falls back to ``os.rename`` after checking the name is free, which a
concurrent keeper could race; the state dir's lock serialises the
identity service's keepers anyway. The caller holds that lock against
writers that would replace ``path`` meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat

from ._fs import FILE_MODE, fsync_dir, list_folder
from ._names import DAMAGED, kept_name, kept_number

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from ._fs import PathLike

__all__ = ["keep_aside", "kept_files"]

#: What ``link`` says when the filesystem (or the file: a directory) allows no hard link.
_NO_HARD_LINK = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}
)


def keep_aside(path: PathLike, label: str = DAMAGED) -> str:
    """Move ``path`` to ``<path>.<label>-<n>``, the first free ``n`` from 1; return that path.

    Never replaces an existing file. A symlink at ``path`` is moved itself,
    never followed. The kept file is made 0600 when it is a regular file
    this user owns; the directory is fsynced. Raises :class:`OSError` when
    the file cannot be moved (:class:`FileNotFoundError` when there is
    nothing at ``path``, or another keeper moved it first): ``path`` is
    then where it was, and no new name is left behind.
    """
    path = os.fspath(path)
    if not label or os.sep in label or (os.altsep and os.altsep in label):
        raise ValueError(f"a label names a kind of damage, not a path: {label!r}")
    os.lstat(path)  # FileNotFoundError before any name is tried
    number = 0
    while True:
        number += 1
        kept = kept_name(path, label, number)
        try:
            moved = _link_then_unlink(path, kept)
        except FileExistsError:
            continue
        if moved is None:  # no hard links here
            if os.path.lexists(kept):
                continue
            os.rename(path, kept)
        break
    _make_private(kept)
    fsync_dir(os.path.dirname(path) or ".")
    return kept


def _link_then_unlink(path: str, kept: str) -> bool | None:
    """Give ``path``'s file the name ``kept``, then drop ``path``; ``None`` without hard links.

    Raises :class:`FileExistsError` when ``kept`` is taken, and
    :class:`FileNotFoundError` (with ``kept`` removed again) when another
    keeper moved this very file between the link and the unlink.
    """
    try:
        os.link(path, kept, follow_symlinks=False)
    except FileExistsError:
        raise
    except NotImplementedError:  # pragma: no cover - a platform without linkat
        return None
    except OSError as exc:
        if exc.errno in _NO_HARD_LINK:
            return None
        raise
    try:
        linked, now = os.lstat(kept), os.lstat(path)
        ours = (now.st_dev, now.st_ino) == (linked.st_dev, linked.st_ino)
        if ours:
            os.unlink(path)
    except BaseException:
        os.unlink(kept)  # the file is still at ``path``, or kept under another name
        raise
    if not ours:
        # Another keeper moved this file (it is kept under its name) and a new one
        # took its place at ``path``: that new file is not ours to move.
        os.unlink(kept)
        raise FileNotFoundError(errno.ENOENT, "moved aside by another keeper", path)
    return True


def _make_private(path: str) -> None:
    """Make ``path`` 0600 if it is a regular file this user owns (a symlink is left alone)."""
    info = os.lstat(path)
    private = stat.S_IMODE(info.st_mode) == FILE_MODE
    if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and not private:
        os.chmod(path, FILE_MODE)  # lstat found a regular file: there is no link to follow


def kept_files(path: PathLike, label: str = DAMAGED) -> list[str]:
    """The files :func:`keep_aside` kept for ``path`` under ``label``, by their number.

    ``[]`` when there are none, or the directory cannot be listed.
    """
    folder, name = os.path.split(os.fspath(path))
    numbered = []
    for entry in list_folder(folder or "."):
        number = kept_number(entry, name, label)
        if number is not None:
            numbered.append((number, entry))
    return [os.path.join(folder, entry) for _, entry in sorted(numbered)]
