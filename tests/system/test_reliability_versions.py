"""Files from a newer idstitch (L8): read around, never rewritten by this build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from idstitch.events import NewerFormatError
from idstitch.machine import replay
from idstitch.store import FileLog
from support.helpers import forge_line
from support.reliability import run_host, seed_state_dir, tree

pytestmark = pytest.mark.processes

STEPS = ["login:user-z", "capture:work", "logout", "login:user-y", "clear"]


def newer_lines(last_h: str, seq: int, count: int, kind: str) -> bytes:
    """``count`` well-chained version-5 lines after ``last_h``, from ``seq`` on."""
    lines = []
    for n in range(count):
        record = {"v": 5, "seq": seq + n, "at": "2027-01-01T00:00:00.000000Z", "kind": kind}
        record.update({"device_id": "d-2", "pid": 1, "new_in_v2": {"trust": n}})
        line = forge_line(record, last_h)
        last_h = line[-35:-3].decode()
        lines.append(line)
    return b"".join(lines)


NEWER_SNAPSHOT = json.dumps(
    {"format": "idstitch-snapshot", "version": 3, "seq": 99, "layout": {"new": True}}
).encode()

#: id -> (newer records appended, their kind, the snapshot: this build's, none, or a newer one)
CASES = {
    "newer-last-record": (1, "clear", "ours"),
    "newer-last-record-no-snapshot": (1, "clear", "none"),
    "newer-records-unknown-kind": (3, "merge", "ours"),
    "newer-records-unknown-kind-no-snapshot": (3, "merge", "none"),
    "newer-snapshot": (0, "", "newer"),
    "newer-snapshot-and-record": (2, "clear", "newer"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_files_of_a_newer_build_are_never_rewritten(tmp_path: Path, case: str) -> None:
    """A used state dir, then newer records and/or a newer snapshot; one host run of 5 steps.

    Six cases. The host exits 0 with identity in memory and every file keeps
    every byte and mode; replay stops at the first newer record with
    NewerFormatError naming its version. The host's logout forgets user-b,
    whom the dir holds: it goes to one pending file beside the files (R16; the
    later clear has no one on disk left to forget), and the next run of this
    build opens without user-b.
    """
    count, kind, snapshot = CASES[case]
    state_dir = tmp_path / "state"
    seeded = seed_state_dir(state_dir)
    log = state_dir / "identity.jsonl"
    tail = FileLog(log).tail()
    assert tail.record is not None
    if count:
        with open(log, "ab") as stream:
            stream.write(newer_lines(tail.record["h"], tail.record["seq"] + 1, count, kind))
    if snapshot == "newer":
        (state_dir / "telemetry.json").write_bytes(NEWER_SNAPSHOT)
    elif snapshot == "none":
        (state_dir / "telemetry.json").unlink()
    before = tree(state_dir)

    run = run_host(state_dir, *STEPS)
    assert (0, [f"host: {s} done" for s in STEPS]) == (
        run.returncode,
        run.stdout.splitlines()[:-1],
    )
    assert "Traceback" not in run.stderr
    assert run.report is not None
    assert (False, "anonymous") == (run.report["persisting"], run.report["state"])
    after = tree(state_dir)
    pending = sorted(name for name in after if name.startswith("identity.pending-"))
    assert (before, 1) == ({k: v for k, v in after.items() if k not in pending}, len(pending))
    later = run_host(state_dir)
    assert later.report is not None
    assert ("reset", later.report["device_id"]) == (
        later.report["state"],
        later.report["distinct_id"],
    )

    result = replay(FileLog(log).records())
    if count:
        assert isinstance(result.error, NewerFormatError)
        assert (tail.record["seq"] + 1, len(seeded)) == (result.error.seq, result.error.offset)
        assert "format version 5 is newer than this build reads (4)" in str(result.error)
    else:
        assert result.error is None
