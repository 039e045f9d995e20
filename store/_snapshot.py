"""The snapshot file (``telemetry.json``): the folded state at a given ``seq``.

Written atomically: a uniquely named temporary file in the same directory
(random name, ``O_EXCL``, 0600: what ``mkstemp`` does), write, ``os.replace``,
then ``fsync`` of the directory. Two writers in the same millisecond never share a temporary
path (rule R12), and a reader sees the old file or the new one, never half
of one.

The temporary file itself is not fsynced: the snapshot is derived from the
log, whose record is fsynced before the snapshot is written, and a snapshot
is never trusted beyond the log (it names the record it folded, and the
reader checks that record is the log's last). After a power cut that lost
the snapshot's bytes but kept its new name, it reads as ``corrupt`` and the
service rebuilds it from the log. Leaving that fsync out makes an identity
change cost two fsyncs (the log and the directory) instead of three (bar B3).

Reading never raises: a missing, oversized, unreadable, corrupt or newer
snapshot is reported as such and the caller rebuilds from the log. Reading
is on every start-up path and writing on the first run's, so both import
nothing but ``os`` and the C JSON code that the standard library's ``json``
itself runs on (:mod:`idstitch.events._canonical`; ``json`` would bring
``re`` and ``enum`` along, ``tempfile`` ``shutil`` and ``random``).
"""

from __future__ import annotations

import os

from idstitch.events._canonical import dumps, loads

from ._fs import ensure_dir, fsync_dir, list_folder, open_file
from ._names import temporary_affixes

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Final, Literal, TypeAlias

    from ._fs import PathLike

    SnapshotStatus: TypeAlias = Literal["ok", "missing", "foreign", "corrupt", "newer"]

__all__ = [
    "MAX_SNAPSHOT_BYTES",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "SnapshotRead",
    "read_snapshot",
    "sweep_temporaries",
    "write_snapshot",
]

#: The marker a snapshot names itself with; a JSON object without it is foreign.
SNAPSHOT_FORMAT: Final = "idstitch-snapshot"
#: The snapshot layout version this build writes; it reads every version up to it. Version 2
#: added the identity's ``consent`` and ``consent_at`` (log format 4): a version-1 snapshot,
#: which has neither, reads as one with no consent recorded.
SNAPSHOT_VERSION: Final = 2
#: A snapshot is a few hundred bytes; anything far larger is refused unread.
MAX_SNAPSHOT_BYTES: Final = 64 * 1024


class SnapshotRead:
    """What :func:`read_snapshot` found.

    ``status``: ``ok`` (``data`` is an idstitch snapshot of this version),
    ``foreign`` (``data`` is another tool's JSON object), ``missing``,
    ``corrupt`` or ``newer`` (``problem`` says why; ``data`` is empty).
    """

    __slots__ = ("data", "problem", "status")

    def __init__(
        self,
        status: SnapshotStatus,
        data: dict[str, Any] | None = None,
        problem: str | None = None,
    ) -> None:
        self.status: SnapshotStatus = status
        self.data: dict[str, Any] = {} if data is None else data
        self.problem = problem

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SnapshotRead) and (self.status, self.data, self.problem) == (
            other.status,
            other.data,
            other.problem,
        )

    __hash__ = None  # type: ignore[assignment]  # holds a dict: compare, never hash

    def __repr__(self) -> str:
        return f"SnapshotRead({self.status!r}, data={self.data!r}, problem={self.problem!r})"


def read_snapshot(path: PathLike, *, max_bytes: int = MAX_SNAPSHOT_BYTES) -> SnapshotRead:
    """Read the snapshot at ``path``; never raises."""
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return SnapshotRead("missing")
    except OSError as exc:
        return SnapshotRead("corrupt", problem=f"cannot open: {exc.strerror or exc}")
    try:
        raw = os.read(fd, max_bytes + 1)
    except OSError as exc:
        return SnapshotRead("corrupt", problem=f"cannot read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        return SnapshotRead("corrupt", problem=f"larger than {max_bytes} bytes")
    try:
        data = loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return SnapshotRead("corrupt", problem=f"not JSON: {type(exc).__name__}")
    if not isinstance(data, dict):
        return SnapshotRead("corrupt", problem="not a JSON object")
    if data.get("format") != SNAPSHOT_FORMAT:
        return SnapshotRead("foreign", data)
    version = data.get("version")
    if type(version) is not int:
        return SnapshotRead("corrupt", problem="no integer version")
    if version > SNAPSHOT_VERSION:
        return SnapshotRead("newer", problem=f"snapshot version {version} is newer than this build")
    if version < 1:
        return SnapshotRead("corrupt", problem=f"snapshot version {version} never existed")
    return SnapshotRead("ok", data)


_MARKER_KEYS = frozenset({"format", "version"})


def write_snapshot(path: PathLike, state: Mapping[str, object]) -> None:
    """Atomically replace the snapshot at ``path`` with ``state`` (plus its format marker).

    Raises :class:`OSError` on I/O faults; the old snapshot is then untouched
    and no temporary file is left behind. The replacement is durable when
    this returns (the directory is fsynced); the new bytes are as durable as
    the page cache makes them (see the module docstring). Raises
    :class:`ValueError`, writing nothing, when ``state`` holds a key of the
    marker (``format`` or ``version``): it would pass the file off as another
    format, or a value JSON cannot hold here (a float, an integer beyond 64 bits).
    """
    clash = sorted(_MARKER_KEYS.intersection(state))
    if clash:
        raise ValueError(f"a snapshot's state cannot set {clash}: those keys are its format marker")
    data = dumps({"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, **state})
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    created = ensure_dir(directory)
    fd, tmp = _create_temporary(directory, *temporary_affixes(os.path.basename(path)))
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - contextlib costs 4 ms of a first run's start
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)
    if created:
        fsync_dir(os.path.dirname(os.path.abspath(directory)))


#: How many names :func:`_create_temporary` tries (``tempfile``'s fallback without ``os.TMP_MAX``).
_TEMPORARY_ATTEMPTS = 10_000


def _token() -> str:
    """The random middle of a temporary file's name."""
    return os.urandom(6).hex()


def _create_temporary(directory: str, prefix: str, suffix: str) -> tuple[int, str]:
    """``tempfile.mkstemp``'s promise without importing it (``shutil``, ``random``: about
    12 ms): a new file, 0600, made with ``O_EXCL`` (so never through a planted link, even
    a dangling one), under a name no other writer holds. Returns its descriptor and path."""
    for _ in range(_TEMPORARY_ATTEMPTS):
        name = os.path.join(directory, f"{prefix}{_token()}{suffix}")
        try:
            return open_file(name, os.O_RDWR | os.O_CREAT | os.O_EXCL), name
        except FileExistsError:
            continue
    import errno

    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def sweep_temporaries(path: PathLike, names: Iterable[str] | None = None) -> list[str]:
    """Remove the temporary files of writes to ``path`` that a killed writer left behind.

    Call it only while holding the state dir's lock, which every writer of
    ``path`` holds: no temporary file found then belongs to a write still
    in progress. ``names`` are the entries of ``path``'s directory when the
    caller has listed it already. Returns the names removed, in the order
    found; one that cannot be removed is left for the next sweep (logged at
    debug level). Never raises.
    """
    folder, name = os.path.split(os.fspath(path))
    prefix, suffix = temporary_affixes(name)
    removed = []
    if names is None:
        names = list_folder(folder or ".")
    for entry in names:
        if (
            entry.startswith(prefix)
            and entry.endswith(suffix)
            and len(entry) > len(prefix + suffix)
        ):
            try:
                os.unlink(os.path.join(folder, entry))
            except FileNotFoundError:
                continue
            except OSError as exc:
                from idstitch.events._voice import debug

                debug("idstitch.store", "idstitch: could not remove %s (%r)", entry, exc)
                continue
            removed.append(entry)
    return removed
