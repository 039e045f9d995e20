"""Many real processes appending to one log at once: nothing lost, doubled or interleaved."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from helpers import split_lines
from idstitch.store import FileLog
from reliability_support import run_together
from workers import append_many

WRITERS = 8
APPENDS = 100


def test_concurrent_appends_from_many_processes(tmp_path: Path) -> None:
    """8 processes x 100 appends: every record once, seq 1..800, chain intact, whole lines only."""
    path = tmp_path / "state" / "identity.jsonl"
    writers = [(str(path), writer, APPENDS) for writer in range(WRITERS)]
    assert [0] * WRITERS == run_together(append_many, writers, release=60, finish=120)

    records = list(FileLog(path).records(strict=True))  # raises at any broken link

    total = WRITERS * APPENDS
    assert list(range(1, total + 1)) == [r["seq"] for r in records]
    expected_ids = Counter(f"user-{w:02d}-{i:04d}" for w in range(WRITERS) for i in range(APPENDS))
    assert expected_ids == Counter(r["user_id"] for r in records)
    for writer in range(WRITERS):
        own = [r["user_id"] for r in records if r["device_id"] == f"device-{writer:02d}"]
        assert [f"user-{writer:02d}-{i:04d}" for i in range(APPENDS)] == own
    lines = split_lines(path.read_bytes())
    assert (total, total) == (len(lines), sum(line.endswith(b'"}\n') for line in lines))
    assert WRITERS == len({r["pid"] for r in records})
