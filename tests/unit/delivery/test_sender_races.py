"""The sender against writers that move while it runs: each race is set up step by step.

A writer here is a :class:`SpoolWriter` of this process (its segment's lock is
an ``flock`` of its own descriptor, which the sender's probe sees as held), and
the sender is :func:`run_sender` with a ``post`` that acts at the moment a
batch is on its way, while the run has read the segment and not yet decided
what to do with it. No sleeping: the interleaving is fixed by the code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from idstitch.delivery import read_status, run_sender
from idstitch.delivery._spool import SpoolWriter, segment_names, segments
from support.spool import capture_entry

HEADER = {"api_key": "k", "host": "http://127.0.0.1:9"}


def test_lines_appended_after_the_senders_read_are_delivered(tmp_path: Path) -> None:
    """A host that appends after the sender read its segment, then closes it before the
    sender's last look at the segment, has those lines delivered, not deleted unseen."""
    folder = str(tmp_path / "spool")
    writer = SpoolWriter(folder, HEADER)
    early, late = capture_entry("e0"), [capture_entry("e1"), capture_entry("cli_command_executed")]
    assert writer.append(early)
    posted: list[str] = []

    def post(header: Mapping[str, Any], batch: list[dict[str, Any]]) -> None:
        posted.extend(message["uuid"] for message in batch)
        if writer.appended == 1:  # the run has read the segment: the host ends its command
            assert all(writer.append(entry) for entry in late)
            writer.close()

    report = run_sender(folder, post=post)
    assert [early["uuid"], *(entry["uuid"] for entry in late)] == posted
    assert ("drained", 3, {}) == (report.result, report.delivered, report.dropped)
    assert ([], 0) == (segment_names(folder), read_status(folder).waiting)


def test_an_empty_segment_is_left_to_the_writer_creating_it(tmp_path: Path) -> None:
    """A segment with nothing in it yet counts as in use though no one holds its lock: its
    writer creates it, then locks it, then writes its header, and a probe of the sender
    between the first two steps would take the lock from under it (that append failed)."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    name = f"seg-{time.time_ns():020d}-{os.getpid()}-000000.jsonl"
    creating = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    try:
        [segment] = segments(str(folder))
        assert segment.in_use()
        report = run_sender(str(folder), post=lambda header, batch: None)
        assert ("drained", 0, {}, [name]) == (
            report.result,
            report.delivered,
            report.dropped,
            segment_names(str(folder)),
        )
    finally:
        os.close(creating)
