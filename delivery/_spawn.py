"""Starting the sender: detached, so that the host's command never waits for the network.

``spawn_sender`` starts ``python -m idstitch.delivery SPOOL_DIR`` with the
host's interpreter, in a new session (a Ctrl-C or a closed terminal does not
reach it), with stdin, stdout and stderr on ``/dev/null`` (a host whose
output is read through a pipe is not held open by it), and returns at once.
Python opens every descriptor close-on-exec, so the sender inherits no
other; it also closes any the host's own parent passed down. ``IDSTITCH_SENDER=1``
in its environment keeps it, and anything it runs, from spooling or
starting senders itself.

It uses ``os.posix_spawn`` (no ``subprocess`` import at the host's exit: about
13 ms), and falls back to ``subprocess`` where that is missing. The sender
runs at a lower priority (``nice`` 10, and ``SCHED_BATCH`` on Linux), so that
it does not take the CPU from the host while the host finishes its exit.

Where a detached process cannot outlive the host (a container whose first
process is the CLI: the container stops with it, and every process in it),
the sink delivers in its own process instead, for a bounded time
(:func:`can_outlive`).
"""

from __future__ import annotations

import os
import sys
import time

from idstitch.service._runtime import SENDER_VARIABLE

from ._spool import LEASE_NAME, locked_by_another, retry_after

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["SENDER_VARIABLE", "can_outlive", "reap", "sender_running", "spawn_sender"]


def sender_running(folder: str) -> bool:
    """Whether a sender holds the spool's lease now."""
    return locked_by_another(os.path.join(folder, LEASE_NAME), create=True)


def _package_root() -> str:
    """The folder holding the installed ``idstitch`` package (for the sender's sys.path)."""
    here = os.path.dirname(os.path.abspath(__file__))  # .../idstitch/delivery
    return os.path.dirname(os.path.dirname(here))


def sender_command(folder: str, budget: float | None = None) -> list[str]:
    extra = [] if budget is None else ["--budget", f"{budget:g}"]
    return [sys.executable, "-m", "idstitch.delivery", folder, *extra]


def sender_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if env is None else env)
    environ[SENDER_VARIABLE] = "1"
    root = _package_root()
    path = environ.get("PYTHONPATH", "")
    environ["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    return environ


def spawn_sender(
    folder: str, *, env: Mapping[str, str] | None = None, budget: float | None = None
) -> int | None:
    """Start a detached sender for the spool at ``folder``; its pid, or ``None`` if not needed.

    Not started while another sender holds the lease, nor before the pause a
    failed run asked for (``retry-after``: an offline laptop starts one a minute
    at most). ``budget``: the seconds it may run (default ``RUN_BUDGET``).
    Raises ``OSError`` if it cannot be started.
    """
    if time.time() < retry_after(folder) or sender_running(folder):
        return None
    command, environ = sender_command(folder, budget), sender_environment(env)
    spawn = getattr(os, "posix_spawn", None)
    if spawn is None:  # pragma: no cover - Windows
        import subprocess

        flags = getattr(subprocess, "DETACHED_PROCESS", 0) | getattr(
            subprocess, "CREATE_NEW_PROCESS_GROUP", 0
        )
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environ,
            cwd=os.path.dirname(folder) or None,
            creationflags=flags,
            close_fds=True,
        ).pid
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid: int = spawn(sys.executable, command, environ, file_actions=actions, setsid=True)
    _yield_to_host(pid)
    return pid


def _yield_to_host(pid: int) -> None:
    """Lower the sender's priority, so that it does not take the CPU from the host on its
    way out: ``nice`` 10 and, on Linux, ``SCHED_BATCH`` (no wake-up preemption). Set from
    the host right after the spawn (glibc's ``posix_spawn`` refuses ``SCHED_BATCH`` as a
    spawn attribute)."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 10)
        os.sched_setscheduler(pid, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):  # not Linux, or not allowed: it runs as it is
        pass


def reap(pids: list[int]) -> None:
    """Collect senders this process started that have exited (no zombies in a long host)."""
    for pid in list(pids):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            pids.remove(pid)


def can_outlive(root: str = "/", *, pid: int | None = None, ppid: int | None = None) -> bool:
    """Whether a detached process can outlive this one.

    Not when this process is the first of its PID namespace (a container's
    PID 1: everything in the container stops with it), nor when it runs in a
    container under a minimal init (``tini``, ``docker --init``) that stops
    the container when its one child exits.
    """
    if (os.getpid() if pid is None else pid) == 1:
        return False
    from idstitch.service._runtime import in_container

    return not ((os.getppid() if ppid is None else ppid) in (0, 1) and in_container(root))
