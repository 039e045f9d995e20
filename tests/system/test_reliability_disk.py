"""Disks that refuse writes (R15): the host command still runs and exits 0, nothing logged is lost.

Every case runs the small host script (``reliability_host.py``) in a
subprocess and checks its exit code, its own output and idstitch's report.
Full and read-only disks are real tmpfs mounts where this process may
mount (root with CAP_SYS_ADMIN, as in this sandbox); where it may not, the
full disk is simulated by making ``os.write`` fail with ENOSPC inside the
host process, and the read-only case is skipped. Permission errors come
from running the host as an unprivileged user.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from idstitch.store import FileLog, read_snapshot
from support.helpers import drain
from support.reliability import (
    HostRun,
    can_mount_tmpfs,
    count,
    remount_read_only,
    run_host,
    seed_state_dir,
    tmpfs,
    tree,
)

pytestmark = pytest.mark.processes

CYCLES = ["login:user-a", "capture:work", "logout"] * 20
NOBODY = 65534


def assert_ran_normally(run: HostRun, steps: list[str], stderr: str = "") -> dict[str, object]:
    """Exit 0, one line per step, nothing else on stderr; returns idstitch's report."""
    assert (0, stderr) == (run.returncode, run.stderr), run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert [f"host: {step} done" for step in steps] == lines[:-1]
    assert run.report is not None
    return run.report


def assert_log_kept(log_path: Path, before: bytes) -> bytes:
    """The log still starts with ``before`` and reads to its end without damage."""
    data = log_path.read_bytes()
    assert data.startswith(before)
    outcome = drain(FileLog(log_path).records(strict=True))
    assert (None, len(data)) == (outcome.error, outcome.checkpoint.offset)
    return data


@pytest.fixture(scope="module")
def mountable(tmp_path_factory: pytest.TempPathFactory) -> bool:
    """Whether a real tmpfs can be mounted here (``IDSTITCH_RELIABILITY_NO_MOUNT=1``: say no)."""
    return not count("no_mount", 0) and can_mount_tmpfs(tmp_path_factory.mktemp("probe"))


def fill(folder: Path) -> int:
    """Write a filler file in ``folder`` until its filesystem says ENOSPC; the bytes written."""
    written = 0
    with open(folder / "filler", "wb", buffering=0) as stream:
        for chunk in (65536, 4096, 1):
            while True:
                try:
                    count = stream.write(b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += count or 0
    return written


@pytest.fixture
def full_disk(tmp_path: Path, mountable: bool) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder on a full disk, and the host's extra environment.

    A real 512 KiB tmpfs filled to ENOSPC after the test put its files there
    (the test calls ``fill``); or, where mounting is not permitted, a plain
    folder and ``HOST_INJECT_ENOSPC``.
    """
    if mountable:
        with tmpfs(tmp_path / "disk", "512k") as disk:
            yield disk, {}
    else:
        disk = tmp_path / "disk"
        disk.mkdir()
        yield disk, {"HOST_INJECT_ENOSPC": "2"}


def test_a_state_dir_that_cannot_be_created(tmp_path: Path) -> None:
    """The state dir's parent is a regular file (ENOTDIR), one run of 60 steps.

    The host finishes every step and exits 0; identity lives in memory
    (stamped, never aliased: nothing could record an alias); nothing is
    created.
    """
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"a file\n")
    before = tree(tmp_path)
    run = run_host(blocker / "state", *CYCLES)
    warning = (
        f"WARNING:idstitch.service:idstitch: not using the state dir {blocker / 'state'}: "
        "cannot inspect it: Not a directory; this run keeps the identity in memory\n"
    )
    report = assert_ran_normally(run, CYCLES, warning)
    assert (False, "reset") == (report["persisting"], report["state"])
    assert before == tree(tmp_path)


def test_a_full_disk_under_an_existing_log(
    full_disk: tuple[Path, dict[str, str]], mountable: bool
) -> None:
    """A used state dir, then the disk filled to ENOSPC, then 60 steps (20 login/logout cycles).

    The records that still fit (in the log's last page) are whole; the
    first append that does not fit is undone (a short write is truncated
    back) and identity moves to memory; the log keeps every earlier byte
    and reads clean; the snapshot is a whole one.
    """
    disk, env = full_disk
    state_dir = disk / "state"
    seeded = seed_state_dir(state_dir)
    if mountable:
        assert fill(disk) > 0
    run = run_host(state_dir, *CYCLES, env=env)
    report = assert_ran_normally(run, CYCLES)
    assert (False, "reset") == (report["persisting"], report["state"])
    assert_log_kept(state_dir / "identity.jsonl", seeded)
    assert "ok" == read_snapshot(state_dir / "telemetry.json").status
    assert [] == [n for n in os.listdir(state_dir) if n.endswith(".tmp")]


def test_a_fresh_state_dir_on_a_full_disk(
    full_disk: tuple[Path, dict[str, str]], mountable: bool
) -> None:
    """A first run whose state dir is on a full disk: 60 steps, exit 0, identity in memory.

    Whatever files the failed first write left (an empty log, the lock)
    hold no partial record.
    """
    disk, env = full_disk
    if mountable:
        fill(disk)
    else:
        env = {"HOST_INJECT_ENOSPC": "0"}
    state_dir = disk / "state"
    run = run_host(state_dir, *CYCLES, env=env)
    report = assert_ran_normally(run, CYCLES)
    assert (False, "reset") == (report["persisting"], report["state"])
    if (state_dir / "identity.jsonl").exists():
        assert_log_kept(state_dir / "identity.jsonl", b"")


def test_a_read_only_disk(tmp_path: Path, mountable: bool) -> None:
    """A used state dir on a tmpfs remounted read-only (EROFS even for root); 60 steps.

    Exit 0, identity in memory from the log's last record, not a byte or a
    mode changed on the disk.
    """
    if not mountable:
        pytest.skip("mounting a tmpfs is not permitted here; no real read-only disk")
    with tmpfs(tmp_path / "disk", "512k") as disk:
        state_dir = disk / "state"
        seed_state_dir(state_dir)
        assert remount_read_only(disk)
        before = tree(disk)
        run = run_host(state_dir, *CYCLES)
        report = assert_ran_normally(run, CYCLES)
        assert (False, "reset") == (report["persisting"], report["state"])
        assert before == tree(disk)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's own tmp dirs are 0700 root)."""
    if os.geteuid() != 0:
        pytest.skip("running the host as another user needs root")
    folder = Path(tempfile.mkdtemp(prefix="idstitch-reliability-"))
    os.chmod(folder, 0o755)  # noqa: S103 - the unprivileged host must reach its state dir
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_permission_denied_as_an_unprivileged_user(shared_dir: Path) -> None:
    """The host runs as uid 65534 on its own state dir made read-only (dir 0500, files 0400).

    Every write fails with EACCES. Exit 0, identity in memory starting from
    the log's identity, not a byte changed; the same state dir writable
    again then works on disk and keeps every earlier record.
    """
    probe = run_host(shared_dir / "probe-state", env={}, user=NOBODY)
    if probe.returncode != 0:
        pytest.skip(f"the host cannot run as uid {NOBODY} here: {probe.stderr[-300:]}")
    state_dir = shared_dir / "state"
    seeded = seed_state_dir(state_dir)
    for path in [state_dir, *state_dir.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
        os.chmod(path, 0o500 if path == state_dir else 0o400)
    before = tree(state_dir)
    run = run_host(state_dir, *CYCLES, user=NOBODY)
    report = assert_ran_normally(run, CYCLES)
    assert (False, "reset") == (report["persisting"], report["state"])
    assert before == tree(state_dir)

    for path in [state_dir, *state_dir.iterdir()]:
        os.chmod(path, 0o700 if path == state_dir else 0o600)
    again = run_host(state_dir, "login:user-c", user=NOBODY)
    assert (True, "user-c") == (
        assert_ran_normally(again, ["login:user-c"])["persisting"],
        again.report and again.report["distinct_id"],
    )
    assert_log_kept(state_dir / "identity.jsonl", seeded)
