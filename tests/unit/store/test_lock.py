"""The process lock: short waits that say whether they got it, and real forks that never hang."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import multiprocessing
import os
import select
import signal
import threading
import time
import typing
import warnings
import weakref
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Event as EventType
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


@contextlib.contextmanager
def another_process_holding(lock_path: Path) -> Iterator[EventType]:
    """Another process holds the ``flock`` on ``lock_path`` (its dir made first) until the
    block ends or the event given is set."""
    lock_path.parent.mkdir()
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=hold_lock, args=(str(lock_path), held, release))
    holder.start()
    try:
        assert held.wait(WAIT)
        yield release
    finally:
        release.set()
        holder.join(WAIT)


# --- short waits ------------------------------------------------------------------------


@pytest.mark.processes
def test_acquire_says_whether_another_process_holds_the_lock(lock_path: Path) -> None:
    """acquire(0) and acquire(0.2) return False while a process holds it, True once it lets go."""
    with another_process_holding(lock_path):
        lock = ProcessLock(lock_path)
        started = time.monotonic()
        busy = (lock.acquire(0), lock.acquire(0.2), lock.held)
        waited = time.monotonic() - started
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


# --- what each way in and out gives and leaves ----------------------------------------


def held_by_another_file(path: Path) -> int:
    """An open file of ``path`` holding its ``flock``, as another process's would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def acquire_in_another_thread(lock: ProcessLock, timeout: float | None) -> bool:
    """What ``lock.acquire(timeout)`` gives in a thread of its own (released again when taken)."""
    result: list[bool] = []

    def attempt() -> None:
        result.append(lock.acquire(timeout))
        if result[0]:
            lock.release()

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join(WAIT)
    return result[0]


def test_with_gives_the_lock_itself(lock_path: Path) -> None:
    """``with ProcessLock(path) as lock:`` binds the lock, holding it inside the block."""
    lock = ProcessLock(lock_path, timeout=WAIT)
    with lock as entered:
        inside = (entered, taken_elsewhere(lock_path))
    assert ((lock, True), False) == (inside, taken_elsewhere(lock_path))


def test_acquire_without_a_bound_keeps_the_lock_from_other_threads(lock_path: Path) -> None:
    """acquire(None) answers True and holds the lock against the process's other threads (and
    other processes) until released."""
    lock = ProcessLock(lock_path)
    taken = lock.acquire(None)
    inside = (taken, acquire_in_another_thread(lock, 0), taken_elsewhere(lock_path))
    lock.release()
    after = (lock.held, taken_elsewhere(lock_path), acquire_in_another_thread(lock, 0))
    assert ((True, False, True), (False, False, True)) == (inside, after)


def test_acquire_with_a_wait_waits_for_another_thread_to_let_go(lock_path: Path) -> None:
    """acquire(wait) from a thread while another thread of the process holds the lock waits
    for it (a wait of seconds or of under one), taking it once let go within the wait."""
    lock = ProcessLock(lock_path)
    outcomes: list[bool] = []

    def wait_for_it(wait: float) -> None:
        outcomes.append(lock.acquire(wait))
        if outcomes[-1]:
            lock.release()

    for wait in (WAIT, 0.9):
        with lock:
            waiter = threading.Thread(target=wait_for_it, args=(wait,))
            waiter.start()
            waiter.join(0.2)  # a waiter that gave up at once has answered by now
        waiter.join(WAIT)
    assert ([True, True], False) == (outcomes, taken_elsewhere(lock_path))


def test_a_refused_acquire_leaves_the_lock_to_other_threads(lock_path: Path) -> None:
    """acquire(0) refused (another open file holds the flock) keeps no part of the lock: once
    that file lets go, another thread of the process takes it."""
    lock = ProcessLock(lock_path)
    holder = held_by_another_file(lock_path)
    try:
        refused = (lock.acquire(0), lock.acquire(0.05), lock.held)
    finally:
        os.close(holder)
    assert ((False, False, False), True) == (refused, acquire_in_another_thread(lock, 0))


class WaitInterruptedError(Exception):
    """What the test's signal handler raises in the middle of a wait (as Ctrl-C would)."""


def waiting_in_the_kernel(path: Path) -> bool:
    """Whether some process waits in ``flock`` for ``path`` (a blocked request in /proc/locks)."""
    inode = f":{os.stat(path).st_ino} "
    with open("/proc/locks") as locks:
        return any("->" in line and inode in line for line in locks)


def test_an_interrupted_wait_leaves_nothing_behind(lock_path: Path) -> None:
    """An exception raised while acquire(None) waits in the kernel for a stuck holder (Ctrl-C)
    propagates as it is, closes the file it opened and leaves the lock to other threads."""
    holder = held_by_another_file(lock_path)
    lock = ProcessLock(lock_path)
    main = threading.get_ident()

    def interrupt(signum: int, frame: object) -> None:
        raise WaitInterruptedError(signum)

    def interrupt_once_waiting() -> None:
        deadline = time.monotonic() + WAIT
        while not waiting_in_the_kernel(lock_path) and time.monotonic() < deadline:
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    interrupter = threading.Thread(target=interrupt_once_waiting)
    try:
        before = sorted(os.listdir("/proc/self/fd"))
        interrupter.start()
        with pytest.raises(WaitInterruptedError):
            lock.acquire(None)
        after = sorted(os.listdir("/proc/self/fd"))
    finally:
        interrupter.join(WAIT)
        signal.signal(signal.SIGUSR1, previous)
        os.close(holder)
    assert (before, False, True) == (after, lock.held, acquire_in_another_thread(lock, 0))


def test_a_try_locked_block_lets_go_only_of_what_it_took(lock_path: Path) -> None:
    """A try_locked attempt never entered lets go of nothing, and one left twice lets go once:
    an outer hold on the same lock survives both."""
    lock = ProcessLock(lock_path)
    with lock:
        lock.try_locked(0).__exit__(None, None, None)
        never_entered = (lock.held, taken_elsewhere(lock_path))
        attempt = lock.try_locked(0)
        entered = attempt.__enter__()
        attempt.__exit__(None, None, None)
        attempt.__exit__(None, None, None)
        left_twice = (entered, lock.held, taken_elsewhere(lock_path))
    assert ((True, True), (True, True, True), False) == (
        never_entered,
        left_twice,
        taken_elsewhere(lock_path),
    )


# --- forks: what a child keeps and what the parent lets go ------------------------------


def fork_quietly() -> int:
    """``os.fork()``, without Python 3.12's warning about forking with threads (under test)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"This process .* is multi-threaded", category=DeprecationWarning
        )
        return os.fork()


@pytest.mark.processes
def test_leaving_the_lock_frees_it_while_a_child_forked_inside_still_runs(
    lock_path: Path,
) -> None:
    """Leaving ``with lock:`` frees the flock at once, though a child forked inside the block
    (sharing its open file) still runs."""
    lock = ProcessLock(lock_path, timeout=WAIT)
    go_read, go_write = os.pipe()  # the child runs until the test closes this

    def child(report: Callable[[Report], None]) -> None:
        os.close(go_write)
        report({"inside": lock.held})
        os.read(go_read, 1)

    with lock:
        forked = Forked(child)
        first = forked.report()
    free = not taken_elsewhere(lock_path)
    os.close(go_write)
    os.close(go_read)
    assert ({"inside": True}, True, 0) == (first, free, forked.exit_code())


@pytest.mark.processes
def test_a_host_dying_mid_change_frees_the_lock_though_its_forked_child_lives(
    lock_path: Path,
) -> None:
    """A host that dies while one of its threads holds the lock leaves the lock free, though a
    child it forked then still runs: the child kept no copy of the lock's open file."""
    lock = ProcessLock(lock_path)
    go_read, go_write = os.pipe()  # the host's child runs until the test closes this
    said_read, said_write = os.pipe()
    host = fork_quietly()
    if host == 0:  # pragma: no cover - the host, which never returns here
        try:
            os.close(go_write)
            os.close(said_read)
            entered = threading.Event()

            def hold() -> None:
                with lock:
                    entered.set()
                    threading.Event().wait()

            threading.Thread(target=hold, daemon=True).start()
            entered.wait(WAIT)
            if fork_quietly() == 0:  # the host's child, past its reset: it outlives the host
                os.write(said_write, b"forked")
                os.close(said_write)
                os.read(go_read, 1)
        finally:
            os._exit(0)  # the host dies inside the lock: the kernel closes its file, no LOCK_UN
    os.close(go_read)
    os.close(said_write)
    told = b""
    while select.select([said_read], [], [], WAIT)[0] and (more := os.read(said_read, 16)):
        told += more  # until both the host and its child are done saying
    _, status = os.waitpid(host, 0)
    free = not taken_elsewhere(lock_path)
    os.close(go_write)
    os.close(said_read)
    assert (b"forked", 0, True) == (told, os.waitstatus_to_exitcode(status), free)


class _Recorder:
    """A layer above whose reset notes every call it gets, whatever object it is called on."""

    calls: typing.ClassVar[list[str]] = []

    def record(self) -> None:
        _Recorder.calls.append(type(self).__name__)


@pytest.mark.processes
def test_at_fork_in_child_runs_any_callable_and_never_a_gone_objects_method() -> None:
    """A registered builtin method (a queue's clear) runs in the child, held as it is; a bound
    method whose object is gone never runs there, not even without its object."""
    pending = [1, 2]
    at_fork_in_child(pending.clear)
    gone = _Recorder()
    at_fork_in_child(gone.record)
    del gone
    gc.collect()

    def child(report: Callable[[Report], None]) -> None:
        report({"pending": pending, "recorded": _Recorder.calls})

    forked = Forked(child)
    found = (forked.report(), forked.exit_code(), pending, _Recorder.calls)
    assert ({"pending": [], "recorded": []}, 0, [1, 2], []) == found


@pytest.mark.processes
def test_at_fork_in_child_runs_in_every_generation() -> None:
    """A reset registered in a parent runs in its child and again in the child's own child."""
    service = _Service()
    at_fork_in_child(service.reset)

    def child(report: Callable[[Report], None]) -> None:
        grandchild = fork_quietly()
        if grandchild == 0:  # pragma: no cover - the grandchild, which never returns here
            try:
                report({"grandchild resets": service.resets})
            finally:
                os._exit(0)
        _, status = os.waitpid(grandchild, 0)
        report({"child resets": service.resets, "grandchild exit": status})

    forked = Forked(child)
    found = (forked.report(), forked.report(), forked.exit_code(), service.resets)
    assert ({"grandchild resets": 2}, {"child resets": 1, "grandchild exit": 0}, 0, 0) == found


def test_dropped_locks_leave_the_fork_registry(lock_path: Path) -> None:
    """Each ProcessLock leaves the registry of live locks (walked at every fork) once dropped:
    a host making a lock per change does not grow it."""
    from idstitch.store import _lock

    gc.collect()
    before = len(_lock._LIVE_LOCKS)
    locks = [ProcessLock(lock_path) for _ in range(50)]
    during = len(_lock._LIVE_LOCKS)
    del locks
    gc.collect()
    assert (before + 50, before) == (during, len(_lock._LIVE_LOCKS))


def test_a_release_by_a_thread_not_holding_the_lock_changes_nothing(lock_path: Path) -> None:
    """release() from a thread that does not hold the lock raises RuntimeError and leaves the
    lock as it was: the holder keeps its flock, a lock never taken still takes it next time."""
    lock = ProcessLock(lock_path)
    errors: list[str] = []

    def stray_release() -> None:
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(type(exc).__name__)

    stray_release()
    with lock:
        stray = threading.Thread(target=stray_release)
        stray.start()
        stray.join(WAIT)
        holder_keeps = (lock.held, taken_elsewhere(lock_path))
    with lock:
        taken_again = taken_elsewhere(lock_path)
    assert (["RuntimeError", "RuntimeError"], (True, True), True, False) == (
        errors,
        holder_keeps,
        taken_again,
        taken_elsewhere(lock_path),
    )


@pytest.mark.processes
def test_a_wait_that_outlasts_another_process_takes_the_lock_and_says_so(lock_path: Path) -> None:
    """acquire(timeout) started while another process holds the lock returns True once that
    process lets go within the timeout, and the lock is then held here."""
    with another_process_holding(lock_path) as release:
        threading.Timer(1.0, release.set).start()  # lets go while acquire below waits
        lock = ProcessLock(lock_path)
        taken = lock.acquire(WAIT)
        answer = (taken, lock.held, taken_elsewhere(lock_path))
    lock.release()
    assert ((True, True, True), False) == (answer, lock.held)
