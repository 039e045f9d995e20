"""The cross-process lock: ``flock`` on a lock file that is never deleted.

Deleting a lock file would let a process lock a fresh inode while another
still holds the old one, so the file stays. The lock is re-entrant within
a process (a thread lock sits in front of the ``flock``), so a caller can
hold it across a read-decide-append sequence that appends itself.
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

__all__ = ["ProcessLock"]


class ProcessLock:
    """An exclusive lock shared by every thread and process that names ``path``."""

    def __init__(self, path: PathLike) -> None:
        self.path = path
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
                    fcntl.flock(fd, fcntl.LOCK_EX)
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

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (in any thread)."""
        return self._depth > 0
