"""Off the happy path the promises hold: a forgetting is never lost, damage heals once, the
host never waits long, never hangs after a fork and never gets an exception for data.

Real files, real lock holders in other processes, real forks. Each test counts what
happened (records, files, states); none sleeps or times.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from idstitch.adapters.runtime import Runtime
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import IdentityStitch, State
from idstitch.service import STORAGE_TRANSITIONS, Storage, storage_mermaid
from idstitch.service._pending import write_pending
from idstitch.store import FileLog
from support import REPO, SUPPORT
from support.helpers import forge_line
from support.service import DeviceIds, log_records, open_stitch
from support.storage_workers import fork_during_a_change
from support.workers import holding_the_lock, logout_beyond_file_size_limit


@pytest.fixture
def stuck_holder(tmp_path: Path) -> Iterator[Path]:
    """Another process holding ``identity.lock`` of ``tmp_path`` until the test ends."""
    with holding_the_lock(tmp_path):
        yield tmp_path


def _pending(state_dir: Path) -> list[str]:
    return sorted(p.name for p in state_dir.iterdir() if p.name.startswith("identity.pending-"))


def _logged_in(state_dir: Path, user: str = "user-a") -> IdentityStitch:
    stitch = open_stitch(state_dir, devices=DeviceIds("before"))
    assert stitch.login(user) is True
    assert (State.ALIASED, user) == (stitch.state, stitch.user_id)
    return stitch


# ------------------------------------------------------------ forgetting is never lost


@pytest.mark.processes
def test_a_logout_behind_a_stuck_lock_is_pending_and_the_next_run_opens_logged_out(
    tmp_path: Path,
) -> None:
    """R16: with the lock held by another process, logout writes a pending file; every later
    open is logged out on that logout's device; the next lock holder appends it and removes it."""
    _logged_in(tmp_path)
    with holding_the_lock(tmp_path):
        stitch = open_stitch(tmp_path, devices=DeviceIds("during"))
        stitch.logout()
        assert (State.RESET, None, Storage.DEFERRED) == (
            stitch.state,
            stitch.user_id,
            stitch.storage,
        )
        assert 1 == len(_pending(tmp_path))
        meanwhile = open_stitch(tmp_path)  # the lock is still held: opens from the pending file
        assert (State.RESET, None, stitch.device_id) == (
            meanwhile.state,
            meanwhile.user_id,
            meanwhile.device_id,
        )
    after = open_stitch(tmp_path)
    assert (State.RESET, None, stitch.device_id, Storage.HEALTHY) == (
        after.state,
        after.user_id,
        after.device_id,
        after.storage,
    )
    kinds = [(r["kind"], r.get("new_device_id")) for r in log_records(tmp_path)]
    assert ("logout", stitch.device_id) == kinds[-1]
    assert [] == _pending(tmp_path)
    again = open_stitch(tmp_path)  # applied once: a second open appends nothing
    assert len(kinds) == len(log_records(tmp_path))
    assert stitch.device_id == again.device_id


@pytest.mark.processes
def test_a_login_behind_a_stuck_lock_stamps_in_memory_and_aliases_nothing(
    tmp_path: Path,
) -> None:
    """R2, R15: a user event that cannot have the lock is stamped in memory, never aliased."""
    open_stitch(tmp_path)
    before = (tmp_path / "identity.jsonl").read_bytes()
    sink = RecordingSink()
    with holding_the_lock(tmp_path):
        stitch = open_stitch(tmp_path, sink=sink)
        assert stitch.login("user-a") is True
    assert (State.STAMPED, "user-a", Storage.DEFERRED, []) == (
        stitch.state,
        stitch.distinct_id,
        stitch.storage,
        sink.aliases,
    )
    assert before == (tmp_path / "identity.jsonl").read_bytes()
    assert [] == _pending(tmp_path)


@pytest.mark.processes
def test_a_first_run_behind_a_stuck_lock_starts_in_memory_and_writes_once_it_can(
    tmp_path: Path,
) -> None:
    """R15: a first run whose lock is held by another process opens in memory and writes
    nothing; its next change, once the lock is free, starts the log and records the change."""
    with holding_the_lock(tmp_path):
        stitch = open_stitch(tmp_path)
        assert (Storage.DEFERRED, State.ANONYMOUS) == (stitch.storage, stitch.state)
        assert ["identity.lock"] == sorted(p.name for p in tmp_path.iterdir())
    assert stitch.login("user-a") is True
    assert (Storage.HEALTHY, State.ALIASED) == (stitch.storage, stitch.state)
    assert ["genesis", "login"] == [r["kind"] for r in log_records(tmp_path)]


def test_an_opted_out_logout_forgets_the_user_on_disk_and_writes_nothing_else(
    tmp_path: Path,
) -> None:
    """R14, R16: login, then an opted-out logout (the one write opt-out allows), then a run
    without opt-out opens logged out on the new device; the opted-out run wrote one record."""
    _logged_in(tmp_path)
    count = len(log_records(tmp_path))
    opted = open_stitch(tmp_path, env={"DO_NOT_TRACK": "1"}, sink=RecordingSink())
    assert (Storage.READ_ONLY, "user-a") == (opted.storage, opted.user_id)
    assert opted.login("user-b") is True  # recorded nowhere: stamped in memory only
    opted.logout()
    records = log_records(tmp_path)
    assert ["logout"] == [r["kind"] for r in records[count:]]
    after = open_stitch(tmp_path)
    assert (State.RESET, None, opted.device_id) == (after.state, after.user_id, after.device_id)


def test_an_opted_out_logout_with_no_user_on_disk_writes_nothing(tmp_path: Path) -> None:
    """R14: nothing to forget on disk, so an opted-out logout changes no byte."""
    open_stitch(tmp_path)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    opted = open_stitch(tmp_path, env={"DO_NOT_TRACK": "yes"})
    opted.login("user-a")
    opted.logout()
    assert files == {p.name: p.read_bytes() for p in tmp_path.iterdir()}


@pytest.mark.processes
def test_an_opted_out_logout_behind_a_stuck_lock_is_pending(tmp_path: Path) -> None:
    """R14, R16: an opted-out logout that cannot have the lock still leaves a pending file,
    and a run that opens while the lock is still held is logged out."""
    _logged_in(tmp_path)
    with holding_the_lock(tmp_path):
        opted = open_stitch(tmp_path, env={"DO_NOT_TRACK": "1"})
        opted.logout()
        assert 1 == len(_pending(tmp_path))
        meanwhile = open_stitch(tmp_path)
        assert (None, opted.device_id) == (meanwhile.user_id, meanwhile.device_id)


# ------------------------------------------------------------ damage heals, once


def _used_dir(state_dir: Path) -> list[dict[str, object]]:
    """A state dir whose device was aliased to user-a, then logged out, then aliased to user-b."""
    stitch = open_stitch(state_dir, devices=DeviceIds("used"))
    stitch.login("user-a")
    stitch.logout()
    stitch.login("user-b")
    return log_records(state_dir)


def test_damage_found_before_an_alias_heals_once_keeping_the_file_and_the_snapshots_identity(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Healing: a byte flipped inside the genesis line; the snapshot names the last record, so
    the start reads only the end. The whole log is read before the next alias, finds the damage
    and heals: the log is kept byte for byte, the new log starts from the snapshot (the device,
    never aliased), one warning on that run, none after; the alias goes out once."""
    stitch = open_stitch(tmp_path, devices=DeviceIds("used"))
    stitch.login("user-a")
    stitch.logout()  # a fresh device, never aliased
    log = tmp_path / "identity.jsonl"
    damaged = bytearray(log.read_bytes())
    damaged[40] ^= 1  # inside the genesis line
    log.write_bytes(bytes(damaged))
    sink = RecordingSink()
    with caplog.at_level(logging.WARNING, logger="idstitch"):
        healed = open_stitch(tmp_path, sink=sink)
        assert Storage.HEALTHY == healed.storage  # the start read only the end
        healed.login("user-b")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 == len(warnings)
    assert "identity.jsonl.damaged-1" in warnings[0]
    assert bytes(damaged) == (tmp_path / "identity.jsonl.damaged-1").read_bytes()
    assert 0o600 == os.stat(tmp_path / "identity.jsonl.damaged-1").st_mode & 0o777
    first = log_records(tmp_path)[0]
    assert ("heal", 2, stitch.device_id, None, None, "identity.jsonl.damaged-1") == (
        first["kind"],
        first["v"],
        first["device_id"],
        first["user_id"],
        first["linked_user"],
        first["kept"],
    )
    assert [("user-b", stitch.device_id)] == [(a.user_id, a.device_id) for a in sink.aliases]
    assert (State.ALIASED, Storage.HEALTHY) == (healed.state, healed.storage)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="idstitch"):
        later = open_stitch(tmp_path, sink=sink)
        later.clear_distinct_id()
        later.login("user-c")
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert (1, Storage.HEALTHY, "user-c") == (len(sink.aliases), later.storage, later.distinct_id)


def test_damage_with_no_snapshot_mints_a_fresh_device_and_forgets_the_user(
    tmp_path: Path,
) -> None:
    """Healing: with nothing to vouch for the records after the damage, the new log starts on a
    fresh device with no user (it may hide a logout or an alias); the next login aliases it."""
    records = _used_dir(tmp_path)
    (tmp_path / "telemetry.json").unlink()
    log = tmp_path / "identity.jsonl"
    data = bytearray(log.read_bytes())
    data[60] ^= 1
    log.write_bytes(bytes(data))
    sink = RecordingSink()
    healed = open_stitch(tmp_path, sink=sink, devices=DeviceIds("fresh"))
    seen = {r.get(k) for r in records for k in ("device_id", "new_device_id")}
    assert (State.ANONYMOUS, None, False) == (
        healed.state,
        healed.user_id,
        healed.device_id in seen,
    )
    healed.login("user-b")
    assert [(a.user_id, a.device_id) for a in sink.aliases] == [("user-b", healed.device_id)]


def test_a_complete_last_record_that_lost_its_line_end_is_kept_and_never_realiased(
    tmp_path: Path,
) -> None:
    """The seed's bug, through a lost byte: the last record (an alias) lost its final newline
    and the snapshot is gone; the next login of another user stamps, never aliases again."""
    stitch = open_stitch(tmp_path, devices=DeviceIds("d"))
    stitch.login("user-b")
    log = tmp_path / "identity.jsonl"
    whole = log.read_bytes()
    log.write_bytes(whole[:-1])
    (tmp_path / "telemetry.json").unlink()
    sink = RecordingSink()
    later = open_stitch(tmp_path, sink=sink)
    later.login("user-c")
    assert ([], "user-c", State.STAMPED) == (sink.aliases, later.distinct_id, later.state)
    assert log.read_bytes().startswith(whole)


def test_a_snapshot_past_the_logs_end_heals_from_the_snapshot(tmp_path: Path) -> None:
    """Healing: the log lost its last record (a logout) but the snapshot saw it; the heal
    trusts the consistent snapshot, so the logged-out user does not come back."""
    stitch = open_stitch(tmp_path, devices=DeviceIds("d"))
    stitch.login("user-a")
    log = tmp_path / "identity.jsonl"
    before_logout = log.read_bytes()
    stitch.logout()
    log.write_bytes(before_logout)  # the logout record is lost; the snapshot names it
    after = open_stitch(tmp_path)
    assert (State.ANONYMOUS, None, stitch.device_id, Storage.HEALTHY) == (
        after.state,
        after.user_id,
        after.device_id,
        after.storage,
    )
    assert before_logout == (tmp_path / "identity.jsonl.damaged-1").read_bytes()


def _logged_in_then_newer(state_dir: Path) -> tuple[Path, bytes]:
    """user-a logged in, then a newer build's record appended (chained); the log and its bytes."""
    open_stitch(state_dir).login("user-a")
    log = state_dir / "identity.jsonl"
    last = log_records(state_dir)[-1]
    newer = {"v": 5, "seq": last["seq"] + 1, "at": last["at"], "kind": "vote"}
    data = log.read_bytes() + forge_line(newer, last["h"])
    log.write_bytes(data)
    return log, data


def test_a_newer_log_stays_read_only_and_untouched(tmp_path: Path) -> None:
    """L8: a log holding a newer build's record is never healed or rewritten."""
    log, data = _logged_in_then_newer(tmp_path)
    stitch = open_stitch(tmp_path)
    stitch.logout()
    assert (Storage.READ_ONLY, data) == (stitch.storage, log.read_bytes())


# ------------------------------------------------------------ the host never breaks


@pytest.mark.processes
def test_a_forked_child_never_hangs_on_a_lock_another_thread_held(tmp_path: Path) -> None:
    """R15: fork while a thread is inside a change; the child's logout returns (and is written)."""
    parent_end, child_end = multiprocessing.Pipe()
    worker = multiprocessing.get_context("fork").Process(
        target=fork_during_a_change, args=(str(tmp_path), child_end), daemon=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on purpose
        worker.start()
    reports: list[tuple[object, ...]] = []
    while len(reports) < 2 and parent_end.poll(60):  # a hung child reports nothing: fail
        reports.append(parent_end.recv())
    worker.join(60)
    if worker.exitcode is None:
        worker.kill()
    assert (0, 2) == (worker.exitcode, len(reports))
    child = next(r for r in reports if r[0] == "child")
    parent = next(r for r in reports if r[0] == "parent")
    assert ("reset", "healthy") == (child[1], child[3])
    assert (0, "aliased") == (parent[1], parent[2])
    assert child[2] in [r.get("new_device_id") for r in log_records(tmp_path)]


def test_an_id_from_the_network_never_raises_even_opted_out(tmp_path: Path) -> None:
    """R13, R15: the docs' login example with "null" or a 201-character id returns False,
    raises nothing, with and without opt-out; nor does a capture of a nonsense event name."""
    for env in ({}, {"DO_NOT_TRACK": "1"}):
        stitch = open_stitch(tmp_path, env=env)
        assert [False, False] == [stitch.login("null"), stitch.login("x" * 201)]
        assert None is stitch.user_id
        assert False is stitch.capture(["not", "a", "name"])  # type: ignore[arg-type]


@pytest.mark.processes
def test_nothing_reaches_stderr_unless_the_host_configures_logging(tmp_path: Path) -> None:
    """The library's voice: a heal's warning is silent by default (one NullHandler on the
    idstitch logger) and shown once when the host configures logging."""
    _used_dir(tmp_path)
    (tmp_path / "telemetry.json").unlink()  # the start reads the whole log: the heal is at once
    log = tmp_path / "identity.jsonl"
    data = bytearray(log.read_bytes())
    data[30] ^= 1
    log.write_bytes(bytes(data))
    script = (
        "import sys, logging\n"
        "if sys.argv[2] == 'configure': logging.basicConfig()\n"
        "from idstitch.machine import IdentityStitch\n"
        "IdentityStitch.open(state_dir=sys.argv[1], runtime='persistent', env={})\n"
    )
    quiet = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), "quiet"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "" == quiet.stderr
    for name in ("identity.jsonl", "telemetry.json", "identity.jsonl.damaged-1"):
        (tmp_path / name).unlink()
    log.write_bytes(bytes(data))
    loud = [
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), "configure"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stderr
        for _ in range(2)
    ]
    assert 1 == loud[0].count("WARNING:idstitch")
    assert "" == loud[1]


# ------------------------------------------------------------ the storage machine


def test_the_storage_diagram_is_drawn_from_the_table_and_in_the_docs() -> None:
    """docs/reliability.md carries the storage diagram exactly as the table draws it."""
    docs = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert storage_mermaid() in docs
    states = {str(row.target) for row in STORAGE_TRANSITIONS}
    assert {str(state) for state in Storage} == states


def test_every_storage_state_is_reached_by_some_run(tmp_path: Path) -> None:
    """Each storage state is where a real run ends up: healthy, read-only (opt-out), memory
    (a state dir that is a file), deferred (tested with a stuck holder above)."""
    healthy = open_stitch(tmp_path / "a")
    read_only = open_stitch(tmp_path / "a", env={"DO_NOT_TRACK": "1"})
    (tmp_path / "file").write_bytes(b"")
    memory = open_stitch(tmp_path / "file" / "dir")
    ephemeral = open_stitch(tmp_path / "a", runtime=Runtime.EPHEMERAL)
    assert [Storage.HEALTHY, Storage.READ_ONLY, Storage.MEMORY, Storage.READ_ONLY] == [
        s.storage for s in (healthy, read_only, memory, ephemeral)
    ]


@pytest.mark.processes
def test_cold_processes_report_their_storage(tmp_path: Path) -> None:
    """A login then a logout in two fresh interpreters: the second opens as the first left it."""
    worker = str(SUPPORT / "storage_workers.py")
    env = {k: v for k, v in os.environ.items() if k != "DO_NOT_TRACK"}
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, worker, *args],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
                env=env,
            ).stdout
        )
        for args in (("login", str(tmp_path), "user-a"), ("logout", str(tmp_path)))
    ]
    assert [("aliased", "user-a"), ("reset", None)] == [(r["state"], r["user"]) for r in runs]
    assert FileLog(tmp_path / "identity.jsonl").tail().record is not None


@pytest.mark.processes
def test_a_fifo_in_place_of_the_log_is_kept_aside_and_never_blocks(tmp_path: Path) -> None:
    """R15: a FIFO planted as the log is damage: the heal never reads it (no blocking), keeps
    it aside and starts a new log; with no record to check the snapshot against, on a fresh
    device with no user (R3: an unchecked snapshot could hide an alias)."""
    stitch = open_stitch(tmp_path, devices=DeviceIds("d"))
    stitch.login("user-a")
    (tmp_path / "identity.jsonl").unlink()
    os.mkfifo(tmp_path / "identity.jsonl")
    script = (
        "import sys\n"
        "from idstitch.machine import IdentityStitch\n"
        "s = IdentityStitch.open(state_dir=sys.argv[1], runtime='persistent', env={})\n"
        "print(s.storage, s.user_id, s.device_id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    storage, user, device = done.stdout.split()
    assert ("healthy", "None", False) == (storage, user, device == stitch.device_id)
    assert (tmp_path / "identity.jsonl.damaged-1").is_fifo()
    assert "heal" == log_records(tmp_path)[0]["kind"]


def test_a_read_only_run_takes_a_foreign_state_file_as_a_persistent_run_would(
    tmp_path: Path,
) -> None:
    """R2: an ephemeral run beside a host's own state file (no log) starts from its device and
    user, in memory, and writes nothing."""
    foreign = b'{"device_id": "d-legacy", "distinct_id": "user-a"}'
    (tmp_path / "telemetry.json").write_bytes(foreign)
    stitch = open_stitch(tmp_path, runtime=Runtime.EPHEMERAL)
    assert ("d-legacy", "user-a", Storage.READ_ONLY) == (
        stitch.device_id,
        stitch.distinct_id,
        stitch.storage,
    )
    assert [("telemetry.json", foreign)] == [(p.name, p.read_bytes()) for p in tmp_path.iterdir()]


def test_a_logout_past_a_newer_log_is_pending_and_the_next_run_opens_logged_out(
    tmp_path: Path,
) -> None:
    """R16, L8: this build never writes a log holding a newer build's record, so a logout
    goes to a pending file; the next run of this build opens logged out, the log untouched."""
    log, data = _logged_in_then_newer(tmp_path)
    stitch = open_stitch(tmp_path)
    assert ("user-a", Storage.READ_ONLY) == (stitch.user_id, stitch.storage)
    stitch.logout()
    after = open_stitch(tmp_path)
    assert (None, stitch.device_id, data, 1) == (
        after.user_id,
        after.device_id,
        log.read_bytes(),
        len(_pending(tmp_path)),
    )


# ------------------------------------------------------------ found by a review


@pytest.mark.processes
def test_a_logout_the_log_cannot_take_goes_to_a_pending_file(tmp_path: Path) -> None:
    """R16: the log cannot grow by a record (a full disk, RLIMIT_FSIZE in a real process) but
    a small pending file fits: the logout is durable and the next run opens logged out."""
    _logged_in(tmp_path)
    child = multiprocessing.get_context("spawn").Process(
        target=logout_beyond_file_size_limit, args=(str(tmp_path), 120)
    )
    child.start()
    child.join(60)
    after = open_stitch(tmp_path)
    assert (0, None, Storage.HEALTHY) == (child.exitcode, after.user_id, after.storage)
    assert "logout" == log_records(tmp_path)[-1]["kind"]


def test_a_damaged_newline_after_the_snapshots_record_is_no_steady_start(tmp_path: Path) -> None:
    """R16: the logout record (the last) lost its newline to another byte and the snapshot is
    one change older: a start must not take the older snapshot for the steady state."""
    stitch = open_stitch(tmp_path)
    stitch.login("user-a")
    older = (tmp_path / "telemetry.json").read_bytes()
    stitch.logout()
    log = tmp_path / "identity.jsonl"
    log.write_bytes(log.read_bytes()[:-1] + b"\x0b")
    (tmp_path / "telemetry.json").write_bytes(older)
    assert None is open_stitch(tmp_path).user_id


def test_a_heal_never_trusts_a_snapshot_older_than_records_after_the_damage(
    tmp_path: Path,
) -> None:
    """R16: login, logout; the snapshot from before the logout comes back and the login's
    record is damaged: the intact logout after it rules out the snapshot's user."""
    stitch = open_stitch(tmp_path)
    stitch.login("user-a")
    older = (tmp_path / "telemetry.json").read_bytes()
    stitch.logout()
    log = tmp_path / "identity.jsonl"
    data = bytearray(log.read_bytes())
    second_end = data.index(b"\n", data.index(b"\n") + 1)
    data[second_end] = 0x0B  # the login's line end
    log.write_bytes(bytes(data))
    (tmp_path / "telemetry.json").write_bytes(older)
    assert [None, None, None] == [open_stitch(tmp_path).user_id for _ in range(3)]


@pytest.mark.parametrize("planted", ["symlink", "dir"])
def test_a_planted_lock_with_pending_files_heals_and_applies_them(
    tmp_path: Path, planted: str
) -> None:
    """R15, R16: a link or directory planted as the lock file, with a pending clear waiting:
    the run keeps the planted one aside, applies the clear, and persists."""
    _logged_in(tmp_path)
    write_pending(str(tmp_path), kind="clear", new_device_id=None, at="2026-12-07T00:00:00Z")
    lock = tmp_path / "identity.lock"
    lock.unlink()
    if planted == "symlink":
        lock.symlink_to(tmp_path / "elsewhere")
    else:
        lock.mkdir()
    stitch = open_stitch(tmp_path)
    assert (None, Storage.HEALTHY, []) == (stitch.user_id, stitch.storage, _pending(tmp_path))
    assert os.path.lexists(tmp_path / "identity.lock.damaged-1")


def test_a_long_lived_process_follows_a_log_another_process_healed(tmp_path: Path) -> None:
    """L6: a process that read the log before another process healed it (a new, shorter log)
    reads the new log before its next change, never chaining onto the old one."""
    long_lived = open_stitch(tmp_path, devices=DeviceIds("long"))
    long_lived.login("user-a")
    long_lived.logout()
    long_lived.login("user-b")
    (tmp_path / "telemetry.json").unlink()
    log = tmp_path / "identity.jsonl"
    data = bytearray(log.read_bytes())
    data[40] ^= 1
    log.write_bytes(bytes(data))
    healer = open_stitch(tmp_path, devices=DeviceIds("healer"))
    assert "heal" == log_records(tmp_path)[0]["kind"]
    long_lived.login("user-c")
    records = log_records(tmp_path)
    assert [healer.device_id] * len(records) == [r["device_id"] for r in records]
    assert "user-c" == records[-1]["user_id"]


def test_an_opted_out_run_forgets_once(tmp_path: Path) -> None:
    """R14: an opted-out logout, then clear, then logout again: one record in all, no pending
    file (the dir held one user, forgotten once)."""
    _logged_in(tmp_path)
    count = len(log_records(tmp_path))
    opted = open_stitch(tmp_path, env={"DO_NOT_TRACK": "1"})
    opted.logout()
    opted.clear_distinct_id()
    opted.logout()
    assert (["logout"], []) == (
        [r["kind"] for r in log_records(tmp_path)[count:]],
        _pending(tmp_path),
    )
