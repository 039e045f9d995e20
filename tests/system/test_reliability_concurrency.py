"""Many real processes writing one state dir at once: snapshots (R12) and log appends (L1)."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from pathlib import Path

import pytest
from idstitch.events._codec import body_hash
from idstitch.events._kinds import ZERO_HASH
from idstitch.store import (
    MAX_SNAPSHOT_BYTES,
    SNAPSHOT_FORMAT,
    FileLog,
    read_snapshot,
    write_snapshot,
)
from support.helpers import split_lines
from support.reliability import count, run_together
from support.reliability_workers import write_snapshots_reporting
from support.workers import append_many, read_snapshots_until

pytestmark = pytest.mark.processes

SNAPSHOT_WRITERS = count("snapshot_writers", 32)
SNAPSHOT_WRITES = count("snapshot_writes", 50)
APPENDERS = count("appenders", 16)
APPENDS = count("appends", 200)


def test_32_processes_replacing_the_snapshot_at_once(tmp_path: Path) -> None:
    """R12: 32 processes x 50 snapshot writes and one reader, released together (1,600 writes).

    Each writer exits with the errno of any OSError (ENOENT would be 2) or
    99 for any other exception; the reader, reading all along, exits 3 at the
    first read that is not a whole snapshot. Every one must exit 0. The final
    file must be a whole snapshot from one of the writers' last writes, and
    the directory must hold nothing but it (no temporary file left over).
    """
    path = tmp_path / "state" / "telemetry.json"
    path.parent.mkdir(mode=0o700)
    write_snapshot(path, {"writer": -1, "n": -1})  # the reader's first read finds a file
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(SNAPSHOT_WRITERS + 2)  # the writers, the reader and this process
    stop = context.Event()
    writers = [
        context.Process(
            target=write_snapshots_reporting, args=(str(path), w, SNAPSHOT_WRITES, start)
        )
        for w in range(SNAPSHOT_WRITERS)
    ]
    reader = context.Process(target=read_snapshots_until, args=(str(path), start, stop))
    for child in [*writers, reader]:
        child.start()
    start.wait(120)
    for child in writers:
        child.join(180)
    stop.set()
    reader.join(60)

    assert ([0] * SNAPSHOT_WRITERS, 0) == ([child.exitcode for child in writers], reader.exitcode)
    final = read_snapshot(path)
    assert ("ok", SNAPSHOT_FORMAT, SNAPSHOT_WRITES - 1) == (
        final.status,
        final.data.get("format"),
        final.data.get("n"),
    )
    writer = final.data["writer"]
    assert writer in range(SNAPSHOT_WRITERS)
    expected = {"writer": writer, "n": SNAPSHOT_WRITES - 1, "seq": SNAPSHOT_WRITES - 1}
    assert expected == {k: final.data[k] for k in expected}
    assert f"{writer:032x}" == final.data["h"]
    assert ["telemetry.json"] == sorted(os.listdir(path.parent))
    assert path.stat().st_size < MAX_SNAPSHOT_BYTES


def test_16_processes_appending_200_records_each_at_once(tmp_path: Path) -> None:
    """L1: 16 processes x 200 appends behind a barrier (3,200 records) to one log.

    Every record is present exactly once, each writer's records keep their
    order, seq runs 1..3200 with no gap, and every hash link is recomputed
    here from the bytes (not only by the reader under test).
    """
    path = tmp_path / "state" / "identity.jsonl"
    appenders = [(str(path), writer, APPENDS) for writer in range(APPENDERS)]
    assert [0] * APPENDERS == run_together(append_many, appenders)

    records = list(FileLog(path).records(strict=True))
    total = APPENDERS * APPENDS
    assert list(range(1, total + 1)) == [r["seq"] for r in records]
    expected_ids = Counter(
        f"user-{w:02d}-{i:04d}" for w in range(APPENDERS) for i in range(APPENDS)
    )
    assert expected_ids == Counter(r["user_id"] for r in records)
    for writer in range(APPENDERS):
        own = [r["user_id"] for r in records if r["device_id"] == f"device-{writer:02d}"]
        assert [f"user-{writer:02d}-{i:04d}" for i in range(APPENDS)] == own

    lines = split_lines(path.read_bytes())
    prev = ZERO_HASH
    recomputed = []
    for line in lines:
        cut = line.rindex(b',"h":"')
        recomputed.append(body_hash(prev, line[:cut] + b"}") == line[cut + 6 : cut + 38].decode())
        prev = line[cut + 6 : cut + 38].decode()
    assert [True] * total == recomputed
    assert [True] * total == [line.endswith(b'"}\n') for line in lines]  # whole lines only
    assert APPENDERS == len({r["pid"] for r in records})
