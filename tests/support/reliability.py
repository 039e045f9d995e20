"""Shared helpers for the reliability tests: run counts, directory trees, the host script, tmpfs.

No pytest and no hypothesis here, so the spawned and forked workers can import it cheaply.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from idstitch.machine import Identity

__all__ = [
    "HOST",
    "HostRun",
    "can_mount_tmpfs",
    "count",
    "identities_after",
    "remount_read_only",
    "run_host",
    "run_together",
    "seed_state_dir",
    "tmpfs",
    "tree",
]

#: The small host CLI the R15 tests run in a subprocess.
HOST = Path(__file__).resolve().parent / "reliability_host.py"


def count(name: str, default: int) -> int:
    """How many times to try something: ``IDSTITCH_RELIABILITY_<NAME>`` or the CI-sized default."""
    value = os.environ.get(f"IDSTITCH_RELIABILITY_{name.upper()}", "")
    return int(value) if value.strip() else default


def identities_after(records: Iterable[Mapping[str, Any]]) -> dict[tuple[int, str], Identity]:
    """The identity after each record of a log, keyed by that record's (seq, h)."""
    from idstitch.machine import fold

    after: dict[tuple[int, str], Identity] = {}
    identity: Identity | None = None
    for record in records:
        result = fold((record,), identity)
        assert result.error is None, result.error
        identity = result.identity
        assert identity is not None
        after[record["seq"], record["h"]] = identity
    return after


def tree(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Everything below ``root`` (and ``root`` itself as ``"."``): kind, mode and content.

    Files carry their bytes, symlinks their target, directories nothing, so
    two trees compare equal only when nothing was created, removed, changed
    or re-permissioned.
    """
    if not os.path.lexists(root):
        return {}
    found: dict[str, tuple[str, int, bytes]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = os.lstat(path)
        mode = stat.S_IMODE(st.st_mode)
        name = "." if path == root else str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            found[name] = ("link", mode, os.fsencode(os.readlink(path)))
        elif stat.S_ISDIR(st.st_mode):
            found[name] = ("dir", mode, b"")
        else:
            found[name] = ("file", mode, path.read_bytes())
    return found


class HostRun(NamedTuple):
    """How the host script ended: exit code, its output, and idstitch's report (or ``None``)."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None


def run_host(
    state_dir: Path | str,
    *steps: str,
    env: Mapping[str, str] | None = None,
    user: int | None = None,
    timeout: float = 60,
) -> HostRun:
    """Run the host CLI on ``state_dir`` with ``steps``; ``user`` runs it under that uid."""
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    command = [sys.executable, str(HOST), str(state_dir), *steps]
    identity: dict[str, Any] = {}
    if user is not None:
        # setpriv drops root's capabilities at exec, after the interpreter's path has been
        # resolved (a Python under /root stays runnable); else let subprocess switch uids.
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            command = [setpriv, f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
        else:
            identity = {"user": user, "group": user, "extra_groups": []}
    result = subprocess.run(
        command,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **identity,
    )
    report = None
    lines = result.stdout.splitlines()
    if lines and lines[-1].startswith("{"):
        report = json.loads(lines[-1])
    return HostRun(result.returncode, result.stdout, result.stderr, report)


def seed_state_dir(state_dir: Path) -> bytes:
    """A state dir whose log holds a life (genesis, alias, logout, stamp); returns the log bytes."""
    from idstitch.adapters.sinks import NullSink
    from idstitch.machine import IdentityStitch

    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=NullSink(), env={})
    stitch.login("user-a")
    stitch.logout()
    stitch.login("user-b")
    assert stitch.persisting
    return (state_dir / "identity.jsonl").read_bytes()


def _mount(*args: str) -> bool:
    try:
        result = subprocess.run(
            ["mount", *args], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return False
    return result.returncode == 0


def _umount(path: Path) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def can_mount_tmpfs(scratch: Path) -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, no seccomp veto)."""
    probe = scratch / ".mount-probe"
    probe.mkdir(exist_ok=True)
    try:
        if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)):
            return False
        _umount(probe)
        return True
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` (``mount -o size=``) mounted at ``path`` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)):
        raise OSError(f"cannot mount a tmpfs at {path}")
    try:
        yield path
    finally:
        _umount(path)


def remount_read_only(path: Path) -> bool:
    """Make the tmpfs at ``path`` read-only (EROFS for every writer, root included)."""
    return _mount("-o", "remount,ro", str(path))


def run_together(
    target: Callable[..., object],
    arguments: Sequence[tuple[object, ...]],
    *,
    release: float = 120,
    finish: float = 300,
) -> list[int | None]:
    """One spawned process per tuple of ``arguments``, all released at once; their exit codes.

    Each process runs ``target(*args, barrier)``: it waits at the barrier
    once ready, and this process releases them all by waiting there too.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(arguments) + 1)
    children = [context.Process(target=target, args=(*args, start)) for args in arguments]
    for child in children:
        child.start()
    start.wait(release)
    for child in children:
        child.join(finish)
    return [child.exitcode for child in children]
