"""The cross-process lock: ``flock`` on a lock file that is never deleted.

Deleting a lock file would let a process lock a fresh inode while another
still holds the old one, so the file stays. The lock is re-entrant within
a process (a thread lock sits in front of the ``flock``), so a caller can
hold it across a read-decide-append sequence that appends itself.

Waiting can be bounded: a holder that never lets go (a process stopped
with Ctrl-Z in the middle of a change, a hung network filesystem) must not
hang the host CLI. With a ``timeout`` (the identity service uses
:data:`LOCK_WAIT`) the lock raises :class:`TimeoutError` (an ``OSError``)
once it is spent, which the service treats like any other disk fault: that
change is made in memory (rule R15). Without one it waits in the kernel.
:meth:`ProcessLock.acquire` and :meth:`ProcessLock.try_locked` take it
within a wait given on the spot (``0``: one try) and say whether they did.

Forks. A child process starts with a copy of every thread lock as it was
at the ``fork``, held by threads that do not exist in the child: a lock
another thread held then would be held forever, and the child's next
change would hang. So after a ``fork``, in the child, every live
:class:`ProcessLock` gets a fresh thread lock and forgets the ``flock``
it inherited, closing its copy of the descriptor *without* ``LOCK_UN``:
an ``flock`` belongs to the open file description, which the child shares
with the parent, and unlocking it would release the parent's lock. The
parent keeps its lock; the child waits for it like any other process.
When the thread that forks is itself inside the lock, the child carries on
inside it (it leaves it as the parent does) but never unlocks the shared
``flock`` either. Code above this floor with thread locks of its own
registers its reset with :func:`at_fork_in_child`.
"""

from __future__ import annotations

import _thread
import fcntl
import os
from _weakref import ref

from ._fs import ensure_dir, open_file

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from types import TracebackType

    from ._fs import PathLike

__all__ = ["LOCK_WAIT", "ProcessLock", "at_fork_in_child"]

#: Seconds the identity service waits for another process's change (each takes
#: milliseconds, fsyncs included; a CLI makes one or two).
LOCK_WAIT = 1.0


class ProcessLock:
    """An exclusive lock shared by every thread and process that names ``path``."""

    def __init__(self, path: PathLike, *, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = _thread.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._flock_pid = 0  # the process whose descriptor holds the flock
        self._owner = 0  # the thread holding the lock (while _depth > 0)
        _LIVE_LOCKS[id(self)] = ref(self, _forget_lock(id(self)))

    def __enter__(self) -> ProcessLock:
        """Take the lock, waiting at most :attr:`timeout` for other processes (or TimeoutError)."""
        self._thread_lock.acquire()
        if not self._take(self.timeout):
            import errno

            raise TimeoutError(
                errno.ETIMEDOUT,
                f"another process held {os.fspath(self.path)} for {self.timeout:g} s",
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self, timeout: float | None) -> bool:
        """Take the lock within ``timeout`` seconds (``0``: one try; ``None``: no bound).

        ``True`` when taken (release it with :meth:`release`); ``False`` when
        another thread or process held it all that time. Raises
        :class:`OSError` when the lock file cannot be opened. Re-entrant,
        like ``with lock:``.
        """
        if timeout is None:
            self._thread_lock.acquire()
            return self._take(None)
        import time

        deadline = time.monotonic() + timeout
        threads = self._thread_lock
        if not (threads.acquire(True, timeout) if timeout > 0 else threads.acquire(False)):
            return False  # another thread of this process holds it
        return self._take(max(0.0, deadline - time.monotonic()))

    def try_locked(self, timeout: float) -> AbstractContextManager[bool]:
        """A context manager taking the lock within ``timeout`` seconds, giving whether it did.

        ``with lock.try_locked(0.05) as held:`` runs its block either way and
        releases the lock after it only when ``held``.
        """
        return _Attempt(self, timeout)

    def release(self) -> None:
        """Let go of one level of the lock; the ``flock`` goes with the last one.

        Raises :class:`RuntimeError` (as a thread lock does), changing nothing, when this
        thread does not hold the lock.
        """
        if not self._depth or self._owner != _thread.get_ident():
            raise RuntimeError(
                f"this thread does not hold the lock on {os.fspath(self.path)}: "
                "release only what acquire or with took"
            )
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    if self._flock_pid == os.getpid():  # never a parent's flock, from a child
                        fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)
        finally:
            self._thread_lock.release()

    def _take(self, wait: float | None) -> bool:
        """With the thread lock held: take the ``flock`` too (unless held already) within ``wait``.

        Releases the thread lock again when it returns ``False`` or raises.
        """
        try:
            if self._depth == 0:
                ensure_dir(os.path.dirname(os.fspath(self.path)) or ".")
                fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
                try:
                    taken = _flock(fd, wait)
                except BaseException:
                    os.close(fd)
                    raise
                if not taken:
                    os.close(fd)
                    self._thread_lock.release()
                    return False
                self._fd, self._flock_pid = fd, os.getpid()
                self._owner = _thread.get_ident()
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return True

    def _after_fork_in_child(self) -> None:
        """In a forked child: let go of what the parent's other threads held (see the module)."""
        if self._depth and self._owner == _thread.get_ident():
            return  # the forking thread is inside the lock: it leaves it in the child too
        fd, self._fd = self._fd, None
        self._thread_lock = _thread.RLock()
        self._depth = 0
        if fd is not None:
            import contextlib

            with contextlib.suppress(OSError):
                os.close(fd)  # no LOCK_UN: the flock is the parent's

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (in any thread)."""
        return self._depth > 0


class _Attempt:
    """:meth:`ProcessLock.try_locked`'s ``with`` block, given whether it holds the lock."""

    __slots__ = ("_held", "_lock", "_timeout")

    def __init__(self, lock: ProcessLock, timeout: float) -> None:
        self._lock, self._timeout, self._held = lock, timeout, False

    def __enter__(self) -> bool:
        self._held = self._lock.acquire(self._timeout)
        return self._held

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._held:
            self._held = False
            self._lock.release()


def _flock(fd: int, wait: float | None) -> bool:
    """Take the ``flock`` on ``fd``: at once if free, else polling until ``wait`` is spent.

    ``wait`` ``None`` waits in the kernel, as long as it takes.
    """
    if wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    if _try_flock(fd):
        return True
    import time

    deadline = time.monotonic() + wait
    pause = 0.0005
    while time.monotonic() < deadline:
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        if _try_flock(fd):
            return True
        pause = min(pause * 2, 0.01)
    return False


def _try_flock(fd: int) -> bool:
    """Take the exclusive ``flock`` on ``fd`` if no other process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# --- forks ---------------------------------------------------------------------------

#: id -> weak reference of every live ProcessLock (a weak set without importing weakref).
_LIVE_LOCKS: dict[int, ref[ProcessLock]] = {}
#: Resets registered by the layers above: (weak reference to an object, its method's
#: function) for a bound method, (None, the callable) for anything else.
_RESETS: list[tuple[ref[object] | None, Callable[..., object]]] = []


def _forget_lock(key: int) -> Callable[[object], None]:
    def forget(_: object) -> None:
        _LIVE_LOCKS.pop(key, None)

    return forget


def at_fork_in_child(callback: Callable[[], object]) -> None:
    """Run ``callback()`` in every child process forked from now on, after the locks' reset.

    For a layer with thread locks of its own (the identity service): a lock
    held by another thread at the ``fork`` must be replaced in the child. A
    bound method is held through a weak reference to its object, so
    registering keeps nothing alive (it stops running once the object is
    gone); any other callable is held as it is. An exception from a callback
    is swallowed: it must not break the host's child process.
    """
    owner = getattr(callback, "__self__", None)
    function = getattr(callback, "__func__", None)
    if owner is not None and function is not None:
        _RESETS.append((ref(owner), function))
    else:
        _RESETS.append((None, callback))


def _after_fork_in_child() -> None:
    """In a forked child: reset every live lock, then run the resets registered above."""
    import contextlib

    for lock_ref in list(_LIVE_LOCKS.values()):
        lock = lock_ref()
        if lock is not None:
            lock._after_fork_in_child()
    live: list[tuple[ref[object] | None, Callable[..., object]]] = []
    for owner_ref, function in _RESETS:
        owner = owner_ref() if owner_ref is not None else None
        if owner_ref is not None and owner is None:
            continue  # its object is gone
        live.append((owner_ref, function))
        with contextlib.suppress(Exception):  # a reset must never break the host's child
            function() if owner_ref is None else function(owner)
    _RESETS[:] = live


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
