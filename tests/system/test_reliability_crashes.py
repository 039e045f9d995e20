"""Writers killed with SIGKILL at random moments: the log opens, nothing that returned is lost."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.runtime import Runtime
from idstitch.adapters.sinks import NullSink
from idstitch.events import Record, encode_record
from idstitch.machine import Identity, IdentityStitch
from idstitch.store import FileLog, read_snapshot
from support import SUPPORT
from support.helpers import drain
from support.reliability import count, identities_after
from support.reliability_workers import churn

KILL_RUNS = count("kill_runs", 80)
#: The random choices (how many changes to wait for, when to kill, where to tear) are seeded.
SEED = count("seed", 20261127)


def kill_one_writer(
    context: Any,
    state_dir: Path,
    tag: int,
    rng: random.Random,
) -> list[tuple[int, str, bool]]:
    """Start a churning writer, read 1..13 of its reports, kill it 0-4 ms later; every report."""
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=churn, args=(str(state_dir), sender, tag))
    child.start()
    sender.close()
    wanted = rng.randint(1, 13)  # the first report is the open itself
    reports: list[tuple[int, str, bool]] = []
    while len(reports) < wanted:
        assert receiver.poll(60), f"run {tag}: the writer went silent (exit {child.exitcode})"
        reports.append(receiver.recv())
    time.sleep(rng.uniform(0, 0.004))
    child.kill()
    child.join(30)
    assert -9 == child.exitcode, f"run {tag}: the writer ended by itself ({child.exitcode})"
    # Changes that completed between the last read and the kill were reported too.
    while True:
        try:
            if not receiver.poll(0.2):
                break
            reports.append(receiver.recv())
        except (EOFError, OSError):  # the pipe's end, or a report cut off by the kill
            break
    receiver.close()
    return reports


def tear(log_path: Path, rng: random.Random) -> tuple[int, int]:
    """Leave what a crash in the middle of the next append would: a prefix of its line.

    A strict prefix short of its ``"}``: the line missing only its ``\\n`` is a whole
    record, which the next append completes rather than removes. Returns (the good
    size, the number of torn bytes).
    """
    tail = FileLog(log_path).tail()
    assert tail.record is not None
    assert 0 == tail.torn
    device = tail.record.get("new_device_id", tail.record["device_id"])
    line, _ = encode_record(
        tail.checkpoint,
        at="2026-11-27T18:00:00.000000Z",
        kind="clear",
        fields={"device_id": device, "pid": 1},
    )
    torn = rng.randint(1, len(line) - 2)
    with open(log_path, "ab") as stream:
        stream.write(line[:torn])
    return tail.checkpoint.offset, torn


def temporaries(state_dir: Path) -> set[str]:
    """The snapshot's temporary files in ``state_dir``."""
    return {name for name in os.listdir(state_dir) if name.endswith(".tmp")}


@pytest.mark.processes
@pytest.mark.slow
def test_writers_killed_at_random_moments_lose_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL a real writer at a random moment, 80 times in a row on one state dir.

    Each writer (a forked process) opens the state dir and alternates
    login/logout until killed, reporting (seq, h) through a pipe after every
    change returned. After each kill: the log reads without damage (or only
    a torn tail), every reported record is in it, no earlier record changed,
    the snapshot is a whole snapshot naming a record of the log with that
    record's identity (old or new, never half), the state dir opens to the
    log's identity, and a temporary file left by an earlier kill is gone
    once a later writer changed something. Every third run also leaves a
    torn tail (a prefix of a real next line, as a crash mid-write would):
    the reader must report it at the right seq and offset, and the next
    writer must remove exactly it.
    """
    state_dir = tmp_path / "state"
    log_path = state_dir / "identity.jsonl"
    snapshot_path = state_dir / "telemetry.json"
    # The forkserver preloads the writer's imports, so a child starts writing within
    # milliseconds; Python 3.11's forkserver finds tests/ only through PYTHONPATH.
    paths = [str(SUPPORT.parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["support.reliability_workers"])
    rng = random.Random(SEED)
    previous: list[Record] = []
    torn_pending: tuple[int, int] | None = None
    left: set[str] = set()
    stats = dict.fromkeys(
        ["changes", "torn_by_kill", "torn_made", "torn_repaired", "snapshot_old", "snapshot_new"],
        0,
    )
    stats["temporaries_left_by_kills"] = 0

    for run in range(KILL_RUNS):
        reports = kill_one_writer(context, state_dir, run, rng)
        changes = len(reports) - 1
        stats["changes"] += changes
        assert all(persisting for _, _, persisting in reports), f"run {run}: {reports}"

        outcome = drain(FileLog(log_path).records())
        records = outcome.records
        data = log_path.read_bytes()
        if torn_pending is not None:
            good, torn = torn_pending
            if outcome.checkpoint.offset > good:  # the next writer appended: the tear is gone
                stats["torn_repaired"] += 1
                torn_pending = None
            else:
                assert (good, good + torn) == (outcome.checkpoint.offset, len(data)), run
        if outcome.error is not None:
            assert "torn-tail" == outcome.error.cause, f"run {run}: {outcome.error}"
            if torn_pending is None:  # the kill itself cut a write short (a line across a page)
                stats["torn_by_kill"] += 1
                torn_pending = (outcome.checkpoint.offset, len(data) - outcome.checkpoint.offset)
        assert previous == records[: len(previous)], f"run {run}: an earlier record changed"
        present = {(r["seq"], r["h"]) for r in records}
        missing = [(seq, h) for seq, h, _ in reports if (seq, h) not in present]
        assert [] == missing, f"run {run}: reported changes missing from the log"

        after = identities_after(records)
        snapshot = read_snapshot(snapshot_path)
        assert "ok" == snapshot.status, f"run {run}: {snapshot!r}"
        named = (snapshot.data["seq"], snapshot.data["h"])
        assert after[named] == Identity.from_dict(snapshot.data), f"run {run}: half a snapshot"
        newest = named == (records[-1]["seq"], records[-1]["h"])
        stats["snapshot_new" if newest else "snapshot_old"] += 1

        now = temporaries(state_dir)
        stats["temporaries_left_by_kills"] += len(now - left)
        if changes:  # a writer that changed something swept what earlier kills left
            assert len(now) <= 1, f"run {run}: {sorted(now)}"
            assert set() == now & left, f"run {run}: {sorted(now & left)}"
        left = now

        reader = IdentityStitch.open(
            state_dir=state_dir, runtime=Runtime.EPHEMERAL, sink=NullSink(), env={}
        )
        assert after[records[-1]["seq"], records[-1]["h"]] == reader.identity, run

        # A crash mid-write cuts the record after the one the snapshot names (each change
        # writes its snapshot after its record): tear only there. A tear behind an older
        # snapshot is two faults, and healed as damage (tests/test_storage_damage.py).
        if torn_pending is None and outcome.error is None and run % 3 == 2 and newest:
            torn_pending = tear(log_path, rng)
            stats["torn_made"] += 1
            torn_read = drain(FileLog(log_path).records())
            assert torn_read.error is not None
            expected = (records, "torn-tail", records[-1]["seq"] + 1, torn_pending[0])
            assert expected == (
                torn_read.records,
                torn_read.error.cause,
                torn_read.error.seq,
                torn_read.error.offset,
            )
        previous = records

    # The last word: a tear repaired in this process, with the warning it logs.
    if torn_pending is None:
        # A run that may write brings a snapshot a kill left behind up to date first.
        IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=NullSink(), env={})
        torn_pending = tear(log_path, rng)
        stats["torn_made"] += 1
    good, torn = torn_pending
    prefix = log_path.read_bytes()[:good]
    caplog.set_level(logging.WARNING, logger="idstitch")
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=NullSink(), env={})
    stitch.logout()
    log = stitch.log
    assert isinstance(log, FileLog)
    assert [(good, torn)] == [(r.offset, r.length) for r in log.repairs]
    assert [f"removed {torn} torn bytes at offset {good}"] == [
        m.split(" of ")[0].removeprefix("idstitch: ") for m in caplog.messages if "torn" in m
    ]
    data = log_path.read_bytes()
    assert (prefix, None) == (data[:good], drain(FileLog(log_path).records()).error)
    assert set() == temporaries(state_dir)
    stats["torn_repaired"] += 1
    print(f"\nSIGKILL runs: {KILL_RUNS}, {stats}")  # the figures docs/reliability.md quotes


def test_every_later_open_starts_past_a_snapshot_a_kill_left_behind(tmp_path: Path) -> None:
    """A writer killed after its logout's record but before its snapshot (the snapshot one
    change behind the log): every later open, read-only ones included, starts without the
    user, on the logout's new device (R16), and none of them appends to the log."""
    state_dir = tmp_path / "state"
    writer = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=NullSink(), env={})
    writer.login("user-a")
    behind = (state_dir / "telemetry.json").read_bytes()
    writer.logout()
    (state_dir / "telemetry.json").write_bytes(behind)  # what the kill left
    log = (state_dir / "identity.jsonl").read_bytes()
    opens = [("ephemeral", {}), ("persistent", {"DO_NOT_TRACK": "1"}), ("persistent", {})]
    found = []
    for runtime, env in opens:
        reader = IdentityStitch.open(state_dir=state_dir, runtime=runtime, sink=NullSink(), env=env)
        found.append((reader.state.value, reader.user_id, reader.device_id))
        assert log == (state_dir / "identity.jsonl").read_bytes(), runtime
    assert [("reset", None, writer.device_id)] * len(opens) == found
