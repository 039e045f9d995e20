"""The process lock: short waits that say whether they got it, and real forks that never hang."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import multiprocessing
import os
import select
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from idstitch.store import ProcessLock, at_fork_in_child
from support.workers import WAIT, hold_lock

Report = dict[str, object]


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    """Where a test's lock file lives."""
    return tmp_path / "state" / "identity.lock"


def taken_elsewhere(path: Path) -> bool:
    """Whether some open file description holds the ``flock`` on ``path`` (a fresh one cannot)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def held_by_another_thread(lock: ProcessLock) -> Iterator[threading.Event]:
    """A thread inside ``with lock:`` until the yielded event is set (then it leaves)."""
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            entered.set()
            leave.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(WAIT)
        yield leave
    finally:
        leave.set()
        holder.join(WAIT)


class Forked:
    """A forked child that sends JSON reports, one a line, through a pipe."""

    def __init__(self, child: Callable[[Callable[[Report], None]], None]) -> None:
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking with threads may deadlock the child: the
            # very thing under test.
            warnings.filterwarnings(
                "ignore", message=r"This process .* is multi-threaded", category=DeprecationWarning
            )
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns here
            code = 1
            try:
                os.close(read_end)

                def send(report: Report) -> None:
                    os.write(write_end, json.dumps(report).encode() + b"\n")

                child(send)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self.pid, self._stream = pid, os.fdopen(read_end, "rb")

    def report(self, within: float = WAIT) -> Report:
        """The child's next report; ``{"hung": ...}`` when none came within ``within`` seconds."""
        ready, _, _ = select.select([self._stream], [], [], within)
        if not ready:
            return {"hung": f"no report within {within:g} s"}
        line = self._stream.readline()
        return json.loads(line) if line else {"exited": "without a report"}

    def exit_code(self) -> int:
        """Wait (bounded: the child is killed if it hangs) and return its exit code."""
        ready, _, _ = select.select([self._stream], [], [], WAIT)  # EOF once it exits
        if not ready:
            os.kill(self.pid, 9)
        self._stream.close()
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


# --- short waits ------------------------------------------------------------------------


@pytest.mark.processes
def test_acquire_says_whether_another_process_holds_the_lock(lock_path: Path) -> None:
    """acquire(0) and acquire(0.2) return False while a process holds it, True once it lets go."""
    lock_path.parent.mkdir()
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=hold_lock, args=(str(lock_path), held, release))
    holder.start()
    try:
        assert held.wait(WAIT)
        lock = ProcessLock(lock_path)
        started = time.monotonic()
        busy = (lock.acquire(0), lock.acquire(0.2), lock.held)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(WAIT)
    free = (lock.acquire(0), lock.held, taken_elsewhere(lock_path))
    lock.release()
    assert ((False, False, False), True, (True, True, True), False) == (
        busy,
        waited >= 0.2,
        free,
        lock.held,
    )


def test_acquire_is_reentrant_and_bounded_by_other_threads(lock_path: Path) -> None:
    """acquire(0) inside ``with lock:`` nests; from another thread while one holds it, it fails."""
    lock = ProcessLock(lock_path)
    with lock:
        nested = lock.acquire(0)
        lock.release()
        other: list[bool] = []
        thread = threading.Thread(target=lambda: other.append(lock.acquire(0.05)))
        thread.start()
        thread.join(WAIT)
        still = lock.held
    assert (True, [False], True, False) == (nested, other, still, lock.held)


def test_acquire_without_a_wait_never_blocks_on_another_thread(lock_path: Path) -> None:
    """acquire(0) from another thread while one holds the lock answers False at once, rather
    than waiting for it to be let go."""
    lock = ProcessLock(lock_path)
    other: list[bool] = []
    thread = threading.Thread(target=lambda: other.append(lock.acquire(0)))
    with lock:
        thread.start()
        thread.join(WAIT)
        answered = list(other)
    thread.join(WAIT)
    assert ([False], False) == (answered, lock.held)


def test_try_locked_runs_its_block_and_releases_only_what_it_took(lock_path: Path) -> None:
    """try_locked gives False while another thread holds the lock (no release after), else True."""
    lock = ProcessLock(lock_path)
    with held_by_another_thread(lock):
        with lock.try_locked(0.05) as busy_held:
            during_busy = taken_elsewhere(lock_path)
        after_busy = taken_elsewhere(lock_path)
    with lock.try_locked(0) as free_held:
        inside = lock.held
    assert (False, True, True, True, True, False) == (
        busy_held,
        during_busy,
        after_busy,
        free_held,
        inside,
        lock.held,
    )


def test_with_keeps_its_timeout_error(lock_path: Path) -> None:
    """``with lock:`` still raises TimeoutError (an OSError) once its own timeout is spent."""
    lock = ProcessLock(lock_path, timeout=0.05)
    other = ProcessLock(lock_path)
    with held_by_another_thread(other), pytest.raises(TimeoutError, match="another process held"):
        lock.__enter__()
    assert (False, False) == (lock.held, taken_elsewhere(lock_path))


# --- forks ------------------------------------------------------------------------------


@pytest.mark.processes
def test_a_fork_while_another_thread_holds_the_lock_never_hangs_the_child(
    lock_path: Path,
) -> None:
    """In a child forked mid-change, ``with lock:`` times out (the parent holds the flock)
    instead of hanging on the thread lock it inherited; the parent's lock survives the child."""
    lock = ProcessLock(lock_path, timeout=0.3)

    def child(report: Callable[[Report], None]) -> None:
        started = time.monotonic()
        try:
            with lock:
                outcome = "got it"
        except TimeoutError:
            outcome = "timed out"
        report({"outcome": outcome, "within the wait": time.monotonic() - started < 0.3 + 2})

    with held_by_another_thread(lock):
        forked = Forked(child)
        found = (forked.report(), forked.exit_code(), taken_elsewhere(lock_path))
    assert ({"outcome": "timed out", "within the wait": True}, 0, True) == found
    assert (False, False) == (lock.held, taken_elsewhere(lock_path))


@pytest.mark.processes
def test_a_child_gets_the_lock_once_the_parents_holder_lets_go(lock_path: Path) -> None:
    """A child forked mid-change finds the lock busy, then takes it once the holder leaves."""
    lock = ProcessLock(lock_path, timeout=WAIT)

    def child(report: Callable[[Report], None]) -> None:
        report({"busy": not lock.acquire(0)})
        with lock:
            report({"got it": lock.held})

    with held_by_another_thread(lock) as leave:
        forked = Forked(child)
        first = forked.report()
        leave.set()
        second = forked.report()
    assert ({"busy": True}, {"got it": True}, 0) == (first, second, forked.exit_code())


@pytest.mark.processes
def test_a_fork_inside_the_lock_leaves_it_in_the_child_without_unlocking_the_parent(
    lock_path: Path,
) -> None:
    """Forked inside ``with lock:``, the child leaves the block as the parent does, but its exit
    never unlocks the flock it shares with the parent."""
    lock = ProcessLock(lock_path, timeout=0.1)

    def child(report: Callable[[Report], None]) -> None:
        lock.release()  # what the child's own ``with`` exit does
        report({"held": lock.held, "parent still holds": not lock.acquire(0)})

    with lock:
        forked = Forked(child)
        found = (forked.report(), forked.exit_code(), taken_elsewhere(lock_path))
    expected = ({"held": False, "parent still holds": True}, 0, True)
    assert (expected, False) == (found, taken_elsewhere(lock_path))


class _Service:
    """A layer above with a thread lock of its own, reset in a forked child."""

    def __init__(self) -> None:
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def fail(self) -> None:
        raise RuntimeError("a reset that fails")


@pytest.mark.processes
def test_at_fork_in_child_runs_live_resets_and_holds_them_weakly(lock_path: Path) -> None:
    """A registered bound method runs in the child (a failing one breaks nothing); registering
    keeps no object alive."""
    service, failing, gone = _Service(), _Service(), _Service()
    at_fork_in_child(failing.fail)
    at_fork_in_child(service.reset)
    at_fork_in_child(gone.reset)
    gone_ref = weakref.ref(gone)
    del gone
    gc.collect()

    def child(report: Callable[[Report], None]) -> None:
        report({"resets": service.resets})

    forked = Forked(child)
    found = (forked.report(), forked.exit_code(), service.resets, gone_ref())
    del failing
    assert ({"resets": 1}, 0, 0, None) == found


@pytest.mark.processes
def test_a_busy_lock_leaks_no_file_descriptor(lock_path: Path) -> None:
    """Each refused acquire (another process holds the lock) closes the file it opened: a CLI
    retrying against a stopped holder never runs out of descriptors."""
    lock_path.parent.mkdir()
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=hold_lock, args=(str(lock_path), held, release))
    holder.start()
    try:
        assert held.wait(WAIT)
        lock = ProcessLock(lock_path)
        before = len(os.listdir("/proc/self/fd"))
        refused = [lock.acquire(0) for _ in range(20)]
        after = len(os.listdir("/proc/self/fd"))
    finally:
        release.set()
        holder.join(WAIT)
    assert ([False] * 20, before) == (refused, after)
