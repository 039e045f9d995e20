"""The spool: events handed over by the host, waiting for the sender, on disk.

A spool is a directory (0700) of append-only segment files (0600, never
opened through a link). Each writing process appends to a segment of its
own, named by its creation time so that names sort oldest first::

    seg-<ns since the epoch, 20 digits>-<pid>-<random>.jsonl
    seg-....jsonl.sent      the sender's progress: bytes of that segment delivered
    sender.lock             the sender's lease (an flock held while a sender runs)
    sender.json             the last sender run: when, what it delivered, its result
    retry-after             a failed run's earliest next try (seconds since the epoch)
    dropped.json            events dropped, by reason (bounds, refused for good, damage)

A segment's first line is its header (``type: "header"``: where its events
go, the API key and host); every other line is one event (``type:
"capture"`` or ``"alias"``) with the ``uuid`` and ``timestamp`` fixed when it
was captured, so a resend is the same event for PostHog. A writer holds an
``flock`` on its segment while it may still append: the sender deletes a
segment only when it delivered all of it and no writer holds it.

Appending costs one ``write`` (the first append of a process also creates
the segment); nothing is fsynced: a power cut can lose the events of the
last seconds that the kernel had not written back, and can leave a torn last
line, which the sender counts as dropped ("damaged"). A crash of the host
process loses nothing that was appended.

This module uses ``os``, ``json`` and ``time`` only: it is on the host's
path at every command that captures something.
"""

from __future__ import annotations

import _thread
import fcntl
import os
import time

from idstitch.events._frozen import Frozen, freeze
from idstitch.store._fs import ensure_dir, list_folder, open_file
from idstitch.store._lock import at_fork_in_child
from idstitch.store._names import SPOOL_NAME

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

__all__ = [
    "MAX_AGE",
    "MAX_BYTES",
    "SPOOL_FOLDER",
    "SPOOL_VERSION",
    "Segment",
    "SpoolStatus",
    "SpoolWriter",
    "iso_now",
    "new_uuid",
    "purge",
    "read_status",
    "segment_names",
    "segments",
]

#: The spool's line format; a sender skips (and counts) segments of a newer one.
SPOOL_VERSION = 1
#: Default bound on the bytes a spool holds: the oldest segments are dropped beyond it.
MAX_BYTES = 10 * 1024 * 1024
#: Default bound on an event's age in the spool (seconds): 14 days, older ones are dropped.
MAX_AGE = 14 * 24 * 3600.0

#: The spool's folder in a state dir (declared with the state dir's other names).
SPOOL_FOLDER = SPOOL_NAME
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".jsonl"
SENT_SUFFIX = ".sent"
LEASE_NAME = "sender.lock"
RUN_NAME = "sender.json"
RETRY_NAME = "retry-after"
DROPPED_NAME = "dropped.json"
TEMP_PREFIX = ".tmp-"


def new_uuid() -> str:
    """A random UUID (version 4) as text, without importing :mod:`uuid` (about 10 ms)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iso_now(now: float | None = None) -> str:
    """``now`` (default: the clock) as UTC ISO 8601 with microseconds, without :mod:`datetime`."""
    now = time.time() if now is None else now
    seconds = int(now)
    micros = round((now - seconds) * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}+00:00"


def _dumps(value: Mapping[str, Any]) -> bytes:
    import json

    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8", "surrogatepass") + b"\n"


def _ensure_spool_dir(path: str) -> None:
    """Create the spool directory 0700; refuse a link or anything but a directory there."""
    ensure_dir(path)
    st = os.lstat(path)
    import stat

    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{path} is not a directory (a link or a file): not used")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user: not used")


class SpoolWriter:
    """Appends this process's events to its own segment of the spool at ``path``.

    ``header`` is written as the segment's first line. ``max_bytes`` bounds
    one segment: past it an append is refused (``False``: not queued). Never
    raises for I/O faults: an append that fails returns ``False``. After a
    ``fork`` the child starts a segment of its own.
    """

    def __init__(self, path: str, header: Mapping[str, Any], *, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.header = dict(header)
        self.max_bytes = max_bytes
        self.appended = 0  # events appended by this process, since the last close
        self.failed: str | None = None  # why the last append failed
        self._fd: int | None = None
        self._size = 0
        self._lock = _thread.allocate_lock()
        at_fork_in_child(self._after_fork_in_child)

    def append(self, entry: Mapping[str, Any]) -> bool:
        """Append one event (a mapping with ``type``, ``uuid``, ``timestamp``...): one write."""
        try:
            line = _dumps(entry)
            with self._lock:
                fd = self._fd if self._fd is not None else self._open()
                if self._size + len(line) > self.max_bytes:
                    self.failed = f"this process's segment is full ({self.max_bytes} bytes)"
                    return False
                written = os.write(fd, line)
                self._size += written
                if written != len(line):  # a full disk mid-line: the sender counts it as torn
                    self.failed = "short write (disk full?)"
                    self._close_locked()
                    return False
                self.appended += 1
                return True
        except (OSError, ValueError, TypeError) as exc:
            self.failed = repr(exc)
            return False

    def _open(self) -> int:
        _ensure_spool_dir(self.path)
        name = f"{SEGMENT_PREFIX}{time.time_ns():020d}-{os.getpid()}-{os.urandom(3).hex()}"
        fd = open_file(
            os.path.join(self.path, name + SEGMENT_SUFFIX),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "a writer may still append"
            header = _dumps({"type": "header", "v": SPOOL_VERSION, **self.header})
            self._size = os.write(fd, header)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def close(self) -> None:
        """Stop appending to this segment (the sender may then delete it once delivered)."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:  # noqa: SIM105 - contextlib is not loaded on the capture path
                os.close(fd)
            except OSError:  # already gone: nothing to release
                pass

    def _after_fork_in_child(self) -> None:
        # The flock belongs to the description shared with the parent: closing the child's
        # copy keeps the parent's; the child starts a segment of its own.
        self._lock = _thread.allocate_lock()
        self._close_locked()
        self.appended = 0


class Segment:
    """One segment as the sender and the reports see it."""

    __slots__ = ("created", "name", "path", "sent", "size")

    def __init__(self, folder: str, name: str) -> None:
        self.name = name
        self.path = os.path.join(folder, name)
        try:
            self.created = int(name[len(SEGMENT_PREFIX) :].split("-", 1)[0]) / 1e9
        except ValueError:
            self.created = 0.0
        try:
            self.size = os.lstat(self.path).st_size
        except OSError:
            self.size = 0
        self.sent = _read_number(self.path + SENT_SUFFIX)

    @property
    def waiting(self) -> bytes:
        """The bytes not yet delivered (whole lines only; a torn last line is left out)."""
        data = self.read_from(self.sent)
        return data[: data.rfind(b"\n") + 1]

    def read_from(self, offset: int, limit: int | None = None) -> bytes:
        """The segment's bytes from ``offset`` to its end (at most ``limit`` of them)."""
        try:
            fd = open_file(self.path, os.O_RDONLY)
        except OSError:
            return b""
        try:
            chunks: list[bytes] = []
            left = -1 if limit is None else limit
            while left:
                chunk = os.pread(fd, 1 << 20 if left < 0 else min(left, 1 << 20), offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
                left = left if left < 0 else left - len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def in_use(self) -> bool:
        """Whether a writer holds the segment (it may still append to it).

        An empty segment counts as held without a probe: its writer creates it,
        then locks it, then writes its header, and a probe between the first two
        steps would hold the lock for an instant and make the writer's lock (and
        so its append) fail. Once the segment has bytes, its writer holds the lock.
        """
        try:
            if os.lstat(self.path).st_size == 0:
                return True
        except OSError:  # gone (removed, or the user opted out)
            return False
        return locked_by_another(self.path)

    def mark_sent(self, offset: int) -> None:
        """Record that the first ``offset`` bytes were delivered (atomic replace, no fsync)."""
        write_small(self.path + SENT_SUFFIX, str(offset).encode())
        self.sent = offset

    def remove(self) -> None:
        for path in (self.path, self.path + SENT_SUFFIX):
            try:  # noqa: SIM105 - contextlib is not loaded on the capture path
                os.unlink(path)
            except FileNotFoundError:  # removed already (a sweep, an opt-out)
                pass


def locked_by_another(path: str, *, create: bool = False) -> bool:
    """Whether another open description holds an ``flock`` on ``path`` (a probe: it takes
    the lock for an instant when free, and closing the probe lets go of it)."""
    try:
        fd = open_file(path, os.O_RDONLY | (os.O_CREAT if create else 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def segment_names(folder: str) -> list[str]:
    """The names of the spool's segments, oldest first (one listing, nothing opened)."""
    return sorted(
        name
        for name in list_folder(folder)
        if name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)
    )


def segments(folder: str) -> list[Segment]:
    """The spool's segments, oldest first."""
    return [Segment(folder, name) for name in segment_names(folder)]


def write_small(path: str, data: bytes) -> None:
    """Replace the small file ``path`` with ``data`` atomically (a temporary, then rename)."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f"{TEMP_PREFIX}{name}-{os.getpid()}-{os.urandom(3).hex()}")
    fd = open_file(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _read_number(path: str) -> int:
    try:
        fd = open_file(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        return int(os.read(fd, 64).strip() or 0)
    except ValueError:
        return 0
    finally:
        os.close(fd)


def retry_after(folder: str) -> float:
    """The earliest time a new sender should start after a failed run (``0``: any time)."""
    try:
        fd = open_file(os.path.join(folder, RETRY_NAME), os.O_RDONLY)
    except OSError:
        return 0.0
    try:
        return float(os.read(fd, 64).strip() or 0)
    except ValueError:
        return 0.0
    finally:
        os.close(fd)


def read_json(path: str) -> dict[str, Any]:
    """A small JSON object file of the spool; ``{}`` when missing or unreadable."""
    import json

    try:
        fd = open_file(path, os.O_RDONLY)
    except OSError:
        return {}
    try:
        value = json.loads(os.read(fd, 1 << 16) or b"{}")
    except ValueError:
        return {}
    finally:
        os.close(fd)
    return value if isinstance(value, dict) else {}


def write_json(path: str, value: Mapping[str, Any]) -> None:
    import json

    write_small(path, json.dumps(value, sort_keys=True).encode())


def iter_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Each whole line of ``data`` with the offset just past it."""
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return
        yield end + 1, data[start:end]
        start = end + 1


class SpoolStatus(Frozen):
    """What ``idstitch show`` and ``doctor`` report about a spool: a value, compared by field."""

    __slots__ = ("dropped", "last_run", "oldest", "segments", "waiting", "waiting_bytes")
    waiting: int
    waiting_bytes: int
    segments: int
    oldest: float | None
    dropped: dict[str, int]
    last_run: dict[str, Any]

    def __init__(
        self,
        *,
        waiting: int,
        waiting_bytes: int,
        segments: int,
        oldest: float | None,
        dropped: dict[str, int],
        last_run: dict[str, Any],
    ) -> None:
        freeze(self, locals())

    def summary(self) -> str:
        """One line for ``idstitch show`` and ``doctor``."""
        if self.oldest is None:
            said = "empty"
        else:
            said = f"{self.waiting} event(s) waiting since {iso_now(self.oldest)[:19]}Z"
        if self.dropped:
            counts = ", ".join(f"{why} {count}" for why, count in sorted(self.dropped.items()))
            said += f"; dropped {sum(self.dropped.values())} ({counts})"
        run = self.last_run
        if run:
            said += f"; last sender run {run.get('result')}"
            if run.get("error"):
                said += f" ({run['error']})"
            if run.get("last_delivery"):
                said += f", last delivery {str(run['last_delivery'])[:19]}Z"
        return said

    def as_dict(self) -> dict[str, Any]:
        return {
            "waiting": self.waiting,
            "waiting_bytes": self.waiting_bytes,
            "segments": self.segments,
            "oldest": None if self.oldest is None else iso_now(self.oldest),
            "dropped": dict(self.dropped),
            "last_run": dict(self.last_run),
        }


def read_status(folder: str) -> SpoolStatus:
    """Count what the spool at ``folder`` holds, without changing anything."""
    waiting = waiting_bytes = 0
    oldest: float | None = None
    found = segments(folder)
    for segment in found:
        data = segment.waiting
        lines = data.count(b"\n")
        if segment.sent == 0 and lines:
            lines -= 1  # the header
        if lines and oldest is None:
            oldest = segment.created
        waiting += lines
        waiting_bytes += len(data)
    dropped = read_json(os.path.join(folder, DROPPED_NAME))
    counts = {str(k): int(v) for k, v in dropped.items() if isinstance(v, int)}
    return SpoolStatus(
        waiting=waiting,
        waiting_bytes=waiting_bytes,
        segments=len(found),
        oldest=oldest,
        dropped=counts,
        last_run=read_json(os.path.join(folder, RUN_NAME)),
    )


def purge(folder: str) -> int:
    """Delete every event the spool holds (opt-out is retroactive); how many segments went."""
    removed = 0
    for segment in segments(folder):
        segment.remove()
        removed += 1
    return removed
