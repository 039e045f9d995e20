"""Damaged logs and hostile snapshots: never an exception, damage named, identity never regenerated.

Every single-byte change, every truncation point and every line deletion of
a small real log goes through ``replay`` and through ``IdentityStitch.open``
followed by a change, with and without the snapshot that names the intact
log. A hostile ``telemetry.json`` beside an intact log is refused and rebuilt.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import pytest
from idstitch.adapters.sinks import NullSink
from idstitch.events import LogDamagedError, Record, RecordReader
from idstitch.machine import Identity, IdentityStitch, ReplayResult, replay
from idstitch.store import MAX_SNAPSHOT_BYTES, read_snapshot
from idstitch.store._log import _tail_of
from reliability_support import count, identities_after
from service_support import DeviceIds, log_records, open_stitch

#: Byte values tried at every position through IdentityStitch.open (replay tries all 255).
OPEN_VALUES = count("open_values", 2)


class Pristine(NamedTuple):
    """A small real log, its lines, records, snapshot, and the identity after each record."""

    data: bytes
    lines: list[bytes]
    records: list[Record]
    snapshot: bytes
    identities: list[Identity]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    """Genesis, login (alias), logout, login (alias): four records written by the service."""
    state_dir = tmp_path_factory.mktemp("pristine")
    stitch = open_stitch(state_dir, devices=DeviceIds("dev"))
    stitch.login("user-a")
    stitch.logout()
    stitch.login("user-b")
    records = log_records(state_dir)
    data = (state_dir / "identity.jsonl").read_bytes()
    after = identities_after(records)
    return Pristine(
        data,
        data.splitlines(keepends=True),
        records,
        (state_dir / "telemetry.json").read_bytes(),
        [after[r["seq"], r["h"]] for r in records],
    )


def replay_bytes(data: bytes) -> ReplayResult:
    """Replay a log held in memory."""
    return replay(RecordReader(lambda: io.BytesIO(data)))


def damage_of(result: ReplayResult) -> tuple[int, int, str] | None:
    """(seq, offset, cause) of the damage a replay stopped at, if any."""
    error = result.error
    if error is None:
        return None
    assert isinstance(error, LogDamagedError), error
    return error.seq, error.offset, error.cause


def line_of(pristine: Pristine, position: int) -> int:
    """The index of the line holding byte ``position``."""
    end = 0
    for index, line in enumerate(pristine.lines):
        end += len(line)
        if position < end:
            return index
    raise AssertionError(position)


def offset_of(pristine: Pristine, index: int) -> int:
    """The byte offset where line ``index`` starts."""
    return sum(len(line) for line in pristine.lines[:index])


class Opened(NamedTuple):
    """What opening a damaged state dir and changing the identity did."""

    identity: Identity
    persisting: bool
    after_change: bytes
    warnings: list[str]


def open_damaged(
    state_dir: Path, log: bytes, snapshot: bytes | None, caplog: pytest.LogCaptureFixture
) -> Opened:
    """Put ``log`` (and ``snapshot``) in a clean state dir, open it, log in a new user."""
    for name in os.listdir(state_dir):
        if name != "identity.lock":
            os.unlink(state_dir / name)
    (state_dir / "identity.jsonl").write_bytes(log)
    if snapshot is not None:
        (state_dir / "telemetry.json").write_bytes(snapshot)
    caplog.clear()
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=NullSink(), env={})
    identity, persisting = stitch.identity, stitch.persisting
    stitch.login("user-z")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return Opened(identity, persisting, (state_dir / "identity.jsonl").read_bytes(), warnings)


@pytest.fixture
def state_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Path:
    """An empty state dir (0700), with idstitch's warnings captured."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    caplog.set_level(logging.WARNING, logger="idstitch")
    return folder


# --- every single-byte change ---------------------------------------------------------


def test_every_single_byte_change_is_reported_at_its_record_by_replay(pristine: Pristine) -> None:
    """Replay every one of the 255 other values at every byte of a 4-record log (~230,000 logs).

    Each stops at the record holding the byte, with the identity of the
    record before it and the right byte offset; none raises.
    """
    data = pristine.data
    wrong: list[tuple[object, ...]] = []
    tried = 0
    for position, original in enumerate(data):
        index = line_of(pristine, position)
        expected = (
            index + 1,
            offset_of(pristine, index),
            pristine.identities[index - 1] if index else None,
        )
        head, tail = data[:position], data[position + 1 :]
        for value in range(256):
            if value == original:
                continue
            tried += 1
            result = replay_bytes(head + bytes([value]) + tail)
            seq, offset, _ = damage_of(result) or (None, None, None)
            found = (seq, offset, result.identity)
            if found != expected:
                wrong.append((position, value, found))
    assert (255 * len(data), []) == (tried, wrong[:5])


def test_every_single_byte_change_opens_without_regenerating_the_identity(
    pristine: Pristine, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Open then log in, for 2 changed values at every byte, with and without the snapshot.

    Without the snapshot the damage is found by replay: the service works in
    memory from the last good record (a fresh in-memory device only when the
    genesis line itself is damaged) and one warning names the damaged seq.
    With the snapshot of the intact log, the identity is the snapshot's.
    Either way the damaged bytes are never rewritten: the file after the
    change still starts with them.
    """
    data = pristine.data
    final = pristine.identities[-1]
    failures: list[tuple[object, ...]] = []
    tried = 0
    for position, original in enumerate(data):
        index = line_of(pristine, position)
        values = [original ^ 0x01, 0x0A if original != 0x0A else 0x7D, original ^ 0x80][
            :OPEN_VALUES
        ]
        for value in values:
            damaged = data[:position] + bytes([value]) + data[position + 1 :]
            tried += 1
            bare = open_damaged(state_dir, damaged, None, caplog)
            expected_warning = f"record seq {index + 1} at byte {offset_of(pristine, index)}"
            problems = []
            if bare.persisting or damaged != bare.after_change:
                problems.append("log rewritten or appended to")
            if index and bare.identity != pristine.identities[index - 1]:
                problems.append(f"identity {bare.identity!r}")
            if [True] != [expected_warning in w for w in bare.warnings]:
                problems.append(f"warnings {bare.warnings}")
            with_snapshot = open_damaged(state_dir, damaged, pristine.snapshot, caplog)
            if with_snapshot.identity != final:
                problems.append(f"with snapshot: identity {with_snapshot.identity!r}")
            if not with_snapshot.after_change.startswith(damaged):
                problems.append("with snapshot: damaged bytes rewritten")
            if problems:
                failures.append((position, value, problems))
    assert (OPEN_VALUES * len(data), []) == (tried, failures[:5])


# --- every truncation point -----------------------------------------------------------


def test_every_truncation_point_is_a_torn_tail_or_a_shorter_log(
    pristine: Pristine, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cut the log at every byte (~900 cuts), replay it and open it with and without snapshot.

    Replay: the whole lines before the cut, then torn-tail at the next seq.
    Open without snapshot: the torn bytes are removed by the next append and
    everything before them is kept (a cut inside the genesis line, whose
    append never returned, starts a new log). Open with the snapshot: the
    log is shorter than its snapshot says, so nothing is written and the
    identity is the snapshot's.
    """
    data = pristine.data
    ends = [offset_of(pristine, n) for n in range(len(pristine.lines) + 1)]
    failures: list[tuple[object, ...]] = []
    for cut in range(len(data)):
        whole = max(n for n, end in enumerate(ends) if end <= cut)
        good = ends[whole]
        result = replay_bytes(data[:cut])
        last = pristine.identities[whole - 1] if whole else None
        found = (result.identity, damage_of(result))
        if found != (last, None if cut == good else (whole + 1, good, "torn-tail")):
            failures.append((cut, "replay", found))
        bare = open_damaged(state_dir, data[:cut], None, caplog)
        if not (bare.persisting and bare.after_change.startswith(data[:good])):
            failures.append((cut, "bare", bare.persisting))
        if whole and bare.identity != last:
            failures.append((cut, "bare identity", bare.identity))
        if cut != good and not any(f"removed {cut - good} torn bytes" in w for w in bare.warnings):
            failures.append((cut, "no repair reported", bare.warnings))
        kept = open_damaged(state_dir, data[:cut], pristine.snapshot, caplog)
        if (kept.identity, kept.persisting, kept.after_change) != (
            pristine.identities[-1],
            False,
            data[:cut],
        ):
            failures.append((cut, "with snapshot", kept.persisting))
    assert [] == failures[:5]


# --- every line deletion --------------------------------------------------------------


def test_every_line_deletion_is_found(
    pristine: Pristine, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Delete each of the 4 lines: replay stops at its seq (the last one only the snapshot sees).

    Open with the snapshot: identity is the snapshot's and nothing is
    written. Open without: memory from the last good record, log untouched,
    except for a lost last line, which leaves a valid shorter log (the
    documented limit of a hash chain without its anchor).
    """
    lines = pristine.lines
    for index in range(len(lines)):
        damaged = b"".join(lines[:index] + lines[index + 1 :])
        result = replay_bytes(damaged)
        last = index == len(lines) - 1
        before = pristine.identities[index - 1] if index else None
        found = (result.identity, damage_of(result))
        expected = None if last else (index + 1, offset_of(pristine, index), "hash-chain")
        assert (before, expected) == found, index

        bare = open_damaged(state_dir, damaged, None, caplog)
        if last:
            assert (before, True) == (bare.identity, bare.persisting)
        else:
            assert (False, damaged) == (bare.persisting, bare.after_change), index
            assert [f"record seq {index + 1} at byte {offset_of(pristine, index)}"] == [
                w.split(" (")[1].split(":")[0] for w in bare.warnings
            ]
            if index:
                assert before == bare.identity
        kept = open_damaged(state_dir, damaged, pristine.snapshot, caplog)
        assert (pristine.identities[-1], False, damaged) == (
            kept.identity,
            kept.persisting,
            kept.after_change,
        )


# --- a hostile telemetry.json ----------------------------------------------------------


def _snapshot_with(pristine: Pristine, **changes: object) -> bytes:
    data = json.loads(pristine.snapshot)
    data.update(changes)
    return json.dumps(data).encode()


HOSTILE: dict[str, object] = {
    "state-is-a-number": {"state": 5},
    "seq-is-a-string": {"seq": "4"},
    "seq-is-true": {"seq": True},
    "h-is-a-number": {"h": 7},
    "offset-is-a-string": {"offset": "x"},
    "undo-is-a-string": {"undo": "abc"},
    "undo-is-a-dict": {"undo": {"0": "anonymous"}},
    "user-is-a-list": {"user_id": ["user-b"]},
    "device-is-null": {"device_id": None},
    "device-is-blank": {"device_id": "   "},
    "user-is-null-word": {"user_id": "null", "linked_user": "null"},
    "user-has-control-chars": {"user_id": "user\x00b", "linked_user": "user\x00b"},
    "user-is-25k": {"user_id": "u" * 25_000, "linked_user": "u" * 25_000},
    "device-is-60k": {"device_id": "d" * 60_000},
    "seq-is-huge": {"seq": 2**63},
    "h-is-not-hex": {"h": "é" * 32},
    "offset-is-huge": {"offset": 10**30},
    "offset-is-negative": {"offset": -1},
    "seq-is-a-float": {"seq": 4.0},
    "nested-extra": {"extra": json.loads("[" * 500 + "]" * 500)},
}


@pytest.mark.parametrize("changes", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_snapshot_beside_a_good_log_is_rebuilt_from_the_log(
    pristine: Pristine,
    state_dir: Path,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, object],
) -> None:
    """A snapshot that names the log's last record but holds wrong types, huge or illegal values.

    One case each; the service must take its identity from the log and
    replace the file with a good snapshot.
    """
    hostile = _snapshot_with(pristine, **changes)
    opened = open_damaged(state_dir, pristine.data, hostile, caplog)
    assert (pristine.identities[-1], True) == (opened.identity, opened.persisting)
    rebuilt = read_snapshot(state_dir / "telemetry.json")
    assert ("ok", "user-z") == (rebuilt.status, rebuilt.data["distinct_id"])


RAW: dict[str, bytes] = {
    "invalid-utf8": b'{"format":"idstitch-snapshot","version":1,"state":"\xff\xfe"}',
    "deep-nesting-30k": b'{"format":"idstitch-snapshot","version":1,"x":' + b"[" * 30_000,
    "deep-objects": b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    "nul-bytes": b"\x00" * 4096,
    "seq-of-5000-digits": b'{"format":"idstitch-snapshot","version":1,"seq":1' + b"0" * 5000 + b"}",
    "not-an-object": b"[1,2,3]",
    "empty": b"",
    "8-megabytes": b'{"format":"idstitch-snapshot","version":1,"x":"' + b"y" * 8_000_000 + b'"}',
}


@pytest.mark.parametrize("content", list(RAW.values()), ids=list(RAW))
def test_a_garbage_snapshot_beside_a_good_log_is_rebuilt_cheaply(
    pristine: Pristine,
    state_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    content: bytes,
) -> None:
    """Invalid UTF-8, 30,000-deep nesting, NULs, 8 MB: refused, never read past 64 KiB, rebuilt."""
    asked: list[int] = []
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)
    opened = open_damaged(state_dir, pristine.data, content, caplog)
    monkeypatch.undo()
    assert (pristine.identities[-1], True) == (opened.identity, opened.persisting)
    assert max(asked) <= MAX_SNAPSHOT_BYTES + 1  # cheap: never read past the limit
    assert "ok" == read_snapshot(state_dir / "telemetry.json").status


# --- found by the fuzzer ---------------------------------------------------------------


@pytest.mark.parametrize(
    "junk", ["é", "€", "AB", "  "], ids=["2-byte", "3-byte", "upper", "spaces"]
)
def test_a_non_hex_hash_before_the_last_line_is_damage_not_an_exception(
    pristine: Pristine, state_dir: Path, caplog: pytest.LogCaptureFixture, junk: str
) -> None:
    """The hash of the line before the last holds non-hex text (4 cases; valid JSON still).

    Found by fuzz/fuzz_log_reader.py: the append-side tail check raised
    UnicodeEncodeError, so the service dropped the login without a word
    and kept claiming to persist. Now the append refuses with
    LogDamagedError and the service stamps the user in memory.
    """
    lines = list(pristine.lines)
    line = lines[-2]
    junk_bytes = junk.encode()
    lines[-2] = line[: -3 - len(junk_bytes)] + junk_bytes + line[-3:]
    damaged = b"".join(lines)
    with pytest.raises(LogDamagedError):
        _tail_of(lambda at, n: damaged[at : at + n], len(damaged))
    opened = open_damaged(state_dir, damaged, pristine.snapshot, caplog)  # and log in user-z
    assert damaged == opened.after_change
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=NullSink(), env={})
    stitch.login("user-q")
    assert ("user-q", False) == (stitch.distinct_id, stitch.persisting)
    assert damaged == (state_dir / "identity.jsonl").read_bytes()
