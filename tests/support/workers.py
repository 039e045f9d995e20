"""What the spawned processes of the concurrency tests run.

Kept apart from the test modules so a spawned child imports only this
module and ``idstitch.store`` (no pytest, no hypothesis): start-up stays cheap
and the children overlap.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import resource
import signal
import sys
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path

from idstitch.store import FileLog, read_snapshot, write_snapshot

__all__ = [
    "append_beyond_file_size_limit",
    "append_many",
    "append_once_when_told",
    "audit_log_response",
    "audit_log_response_beyond_file_size_limit",
    "disable_beyond_file_size_limit",
    "hold_lock",
    "keep_files_aside",
    "logout_beyond_file_size_limit",
    "notice_beyond_file_size_limit",
    "read_snapshots_until",
    "record_drop_beyond_file_size_limit",
    "record_drop_together",
    "record_time",
    "write_beyond_file_size_limit",
    "write_snapshots",
]

#: How long a child waits at a barrier before giving up (a hung test fails, it never hangs).
WAIT = 60.0


def record_time(index: int) -> str:
    """A distinct, valid record time for the ``index``-th record of a writer."""
    return f"2026-11-27T17:{index // 60 % 60:02d}:{index % 60:02d}.{index % 1_000_000:06d}Z"


def append_many(path: str, writer: int, count: int, start: Barrier) -> None:
    """Wait for every writer, then append ``count`` records tagged with ``writer``."""
    log = FileLog(path)
    start.wait(WAIT)
    for index in range(count):
        log.append(
            "response",
            {
                "device_id": f"device-{writer:02d}",
                "user_id": f"user-{writer:02d}-{index:04d}",
                "runtime": "persistent",
                "pid": os.getpid(),
                "alias": False,
            },
            at=record_time(index),
        )


def append_once_when_told(path: str, ready: Event, refused: Event) -> None:
    """Try the lock without waiting (``refused`` if another holds it), then append, waiting."""
    from idstitch.store._lock import ProcessLock

    log = FileLog(path)
    try:
        with ProcessLock(log.lock_path, timeout=0):
            pass
    except TimeoutError:
        refused.set()
    ready.set()
    log.append("clear", {"device_id": "device-child", "pid": os.getpid()}, at=record_time(0))


def write_snapshots(path: str, writer: int, count: int, start: Barrier) -> None:
    """Wait for every writer, then replace the snapshot ``count`` times."""
    start.wait(WAIT)
    for n in range(count):
        write_snapshot(path, {"writer": writer, "n": n, "seq": n, "h": f"{writer:032x}"})


def read_snapshots_until(path: str, start: Barrier, stop: Event) -> None:
    """Read the snapshot in a loop until ``stop``; exit 3 if any read is not a whole snapshot."""
    start.wait(WAIT)
    reads = 0
    while not stop.is_set() or reads == 0:
        found = read_snapshot(path)
        reads += 1
        if found.status != "ok":
            print(f"read {reads}: {found!r}", file=sys.stderr)
            sys.exit(3)


def write_beyond_file_size_limit(path: str, limit: int, size: int) -> None:
    """Write a snapshot of ``size`` bytes under RLIMIT_FSIZE ``limit``; exit with the errno."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        write_snapshot(path, {"blob": "x" * size})
    except OSError as exc:
        code = exc.errno or 1
    else:
        code = 0
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    sys.exit(code)


#: Exit code of :func:`append_beyond_file_size_limit` when the write came up short.
SHORT_WRITE = 100


def append_beyond_file_size_limit(path: str, room: int) -> None:
    """Append under RLIMIT_FSIZE = size + ``room``; exit with the errno, or SHORT_WRITE."""
    log = FileLog(path)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + room, hard))
    try:
        log.append("clear", {"device_id": "device-limited", "pid": os.getpid()}, at=record_time(0))
    except OSError as exc:
        code = SHORT_WRITE if str(exc).startswith("short write") else exc.errno or 1
    else:
        code = 0
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    sys.exit(code)


@contextlib.contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """Inside, writing past ``limit`` bytes fails with EFBIG (the process is not killed).

    The limit is lifted before the process exits, so what runs at exit (coverage
    saving its data) is not refused as well.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def notice_beyond_file_size_limit(state_dir: str) -> None:
    """Show the first-run notice on a full disk: exit 0 if it said "not shown", raising nothing."""
    import pty

    from idstitch.machine import IdentityStitch

    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", env={})
    _, follower = pty.openpty()  # a terminal, so only the full disk can keep it unshown
    try:
        with _file_size_limit(0), open(follower, "w", encoding="utf-8") as terminal:
            shown = stitch.first_run_notice("we collect usage data", stream=terminal)
    except OSError:
        sys.exit(2)
    sys.exit(1 if shown else 0)


def audit_log_response_beyond_file_size_limit(path: str) -> None:
    """An ephemeral run whose audit log fills up: exit 0 if the response still stamped the user."""
    from idstitch.machine import IdentityStitch

    stitch = IdentityStitch.open(
        state_dir=os.path.dirname(path), runtime="ephemeral", audit_log=path, env={}
    )
    with _file_size_limit(os.path.getsize(path)):
        stitch.observe_authenticated_response("user-a")
    sys.exit(0 if (stitch.state.value, stitch.distinct_id) == ("stamped", "user-a") else 1)


def audit_log_response(path: str, user: str, start: Barrier) -> None:
    """Wait for the others, then open an ephemeral run on the shared audit log and see ``user``."""
    from idstitch.machine import IdentityStitch

    start.wait(WAIT)
    stitch = IdentityStitch.open(
        state_dir=os.path.dirname(path), runtime="ephemeral", audit_log=path, env={}
    )
    stitch.observe_authenticated_response(user)
    stitch.logout()


def hold_lock(path: str, held: Event, release: Event) -> None:
    """Hold the ``flock`` on ``path`` (as a stuck process would) until told to let go."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held.set()
    release.wait(WAIT)
    os.close(fd)


def keep_files_aside(path: str, writer: int, count: int, start: Barrier) -> None:
    """Put ``count`` files of this writer's at ``path`` in turn, keeping aside whatever is there.

    Another writer does the same at once, so both keep files (their own and
    each other's) under the same names: every file must be kept exactly once.
    """
    from idstitch.store import keep_aside

    start.wait(WAIT)
    for index in range(count):
        source = f"{path}.source-{writer}-{index}"
        with open(source, "wb") as stream:
            stream.write(b"writer %d, file %d\n" % (writer, index))
        while True:
            try:
                os.link(source, path)  # put it in place only where nothing is
            except FileExistsError:
                with contextlib.suppress(FileNotFoundError):  # the other writer kept it first
                    keep_aside(path)
                continue
            break
        os.unlink(source)
        with contextlib.suppress(FileNotFoundError):
            keep_aside(path)


def logout_beyond_file_size_limit(state_dir: str, room: int) -> None:
    """Log out when the log can grow by only ``room`` bytes (its append fails, a small pending
    file still fits): exit 0 unless something raised."""
    from idstitch.machine import IdentityStitch

    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", env={})
    limit = os.path.getsize(os.path.join(state_dir, "identity.jsonl")) + room
    with _file_size_limit(limit):
        stitch.logout()
    sys.exit(0 if stitch.user_id is None else 1)


def disable_beyond_file_size_limit(state_dir: str, limit: int, results: Queue[object]) -> None:
    """Disable telemetry when no file may grow past ``limit`` bytes; report the status's
    (enabled, recorded, consent) and whether the process still sends."""
    from idstitch.machine import IdentityStitch

    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", env={})
    with _file_size_limit(limit):
        status = stitch.disable_telemetry()
    results.put((status.enabled, status.recorded, status.consent, stitch.capture("after")))


def record_drop_together(
    state_dir: str, device_id: str, user_id: str, start: Barrier, results: Queue[bool]
) -> None:
    """Wait for every sibling, then record that the alias of ``device_id`` to ``user_id`` was
    dropped; report what :func:`record_dropped_alias` returned."""
    from idstitch.service import record_dropped_alias

    start.wait(WAIT)
    results.put(record_dropped_alias(state_dir, device_id=device_id, user_id=user_id, reason="x"))


def record_drop_beyond_file_size_limit(state_dir: str, device_id: str, user_id: str) -> None:
    """Record a dropped alias when the log cannot grow at all: exit 0 if it said ``False`` and
    raised nothing, 1 if it said ``True``."""
    from idstitch.service import record_dropped_alias

    with _file_size_limit(os.path.getsize(os.path.join(state_dir, "identity.jsonl"))):
        recorded = record_dropped_alias(
            state_dir, device_id=device_id, user_id=user_id, reason="expired"
        )
    sys.exit(1 if recorded else 0)


@contextlib.contextmanager
def holding_the_lock(state_dir: Path) -> Iterator[None]:
    """Another process holds ``identity.lock`` of ``state_dir`` (as a stopped CLI would)."""
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    lock = str(state_dir / "identity.lock")
    child = context.Process(target=hold_lock, args=(lock, held, release))
    child.start()
    try:
        assert held.wait(60)
        yield
    finally:
        release.set()
        child.join(60)
