"""The state dir's small files besides the log and the snapshot, and the sweep of temporaries.

A file published here (a pending forgetting) appears whole or not at all:
it is written to a temporary file, fsynced, renamed into place, and the
directory fsynced. Its writer holds no lock (a pending forgetting is what a
process writes when it cannot get the lock), so a temporary file of a live
writer may be in the dir at any time.

A writer killed mid-write leaves its temporary file behind. The store
sweeps its own: :func:`sweep_state_dir` removes the snapshot writer's (its
writers hold the state dir's lock, which the caller holds) and those of
:func:`publish` old enough that no live writer can still be renaming them.
Nothing else in the dir is touched.
"""

from __future__ import annotations

import os

from ._fs import fsync_dir, list_folder, open_file
from ._names import SNAPSHOT_NAME, is_pending_temporary, published_temporary

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._fs import PathLike

__all__ = ["STALE_SECONDS", "publish", "sweep_state_dir"]

#: A published file's temporary older than this was left by a killed writer.
STALE_SECONDS = 60.0


def publish(folder: PathLike, name: str, data: bytes) -> None:
    """Write the new file ``name`` in ``folder`` durably, whole or not at all.

    ``name`` must be new and unique to this writer (a pending forgetting's
    token makes it so). Raises :class:`OSError` (``FileExistsError`` when
    the temporary name is taken); no temporary file is left behind then.
    """
    folder = os.fspath(folder)
    temporary = os.path.join(folder, published_temporary(name))
    fd = open_file(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        _write_whole(fd, name, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _remove(temporary)
        raise
    os.close(fd)
    try:
        os.rename(temporary, os.path.join(folder, name))
        fsync_dir(folder)
    except BaseException:
        _remove(temporary)
        raise


def sweep_state_dir(folder: PathLike, names: Iterable[str] | None = None) -> list[str]:
    """Remove the temporary files that the store's writers, killed mid-write, left in ``folder``.

    Call it only while holding the state dir's lock. The snapshot's go (its
    writers hold that lock: none is still writing), and the pending
    forgettings' once older than :data:`STALE_SECONDS` (their writers hold
    no lock: a younger one may be a live writer's). ``names``: the dir's
    entries, when the caller listed it already. Returns the names removed;
    never raises.
    """
    from ._snapshot import sweep_temporaries

    folder = os.fspath(folder)
    if names is None:
        names = list_folder(folder or ".")
    names = list(names)
    removed = sweep_temporaries(os.path.join(folder, SNAPSHOT_NAME), names)
    for entry in names:
        path = os.path.join(folder, entry)
        if is_pending_temporary(entry) and _stale(path) and _remove(path):
            removed.append(entry)
    return removed


def _write_whole(fd: int, name: str, data: bytes) -> None:
    written = os.write(fd, data)
    if written != len(data):
        raise OSError(f"short write of {name} ({written} of {len(data)} bytes)")


def _stale(path: str) -> bool:
    import time

    try:
        return time.time() - os.lstat(path).st_mtime > STALE_SECONDS
    except OSError:
        return False


def _remove(path: str) -> bool:
    """Remove ``path``; ``False`` (logged at debug level) when it cannot be."""
    try:
        os.unlink(path)
    except OSError as exc:
        from idstitch.events._voice import debug

        debug("idstitch.store", "idstitch: could not remove %s (%r)", path, exc)
        return False
    return True
