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
"""

from __future__ import annotations

import _thread
import fcntl
import os

from ._fs import ensure_dir, open_file

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from types import TracebackType

    from ._fs import PathLike

__all__ = ["LOCK_WAIT", "ProcessLock"]

#: Seconds the identity service waits for another process's change (each takes
#: milliseconds, fsyncs included; a CLI makes one or two).
LOCK_WAIT = 3.0


class ProcessLock:
    """An exclusive lock shared by every thread and process that names ``path``."""

    def __init__(self, path: PathLike, *, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = _thread.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> ProcessLock:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                ensure_dir(os.path.dirname(os.fspath(self.path)) or ".")
                fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
                try:
                    self._flock(fd)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)
        finally:
            self._thread_lock.release()

    def _flock(self, fd: int) -> None:
        """Take the ``flock``: at once if free, else polling until :attr:`timeout` is spent."""
        if self.timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        if _try_flock(fd):
            return
        import time

        deadline = time.monotonic() + self.timeout
        pause = 0.0005
        while not _try_flock(fd):
            if time.monotonic() >= deadline:
                import errno

                raise TimeoutError(
                    errno.ETIMEDOUT,
                    f"another process held {os.fspath(self.path)} for {self.timeout:g} s",
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (in any thread)."""
        return self._depth > 0


def _try_flock(fd: int) -> bool:
    """Take the exclusive ``flock`` on ``fd`` if no other process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
