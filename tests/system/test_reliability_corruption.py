"""Damaged logs and hostile snapshots: never an exception, damage named, damage healed once.

Every single-byte change, every truncation point and every line deletion of
a small real log goes through ``replay`` and through ``IdentityStitch.open``
followed by a change, with and without the snapshot that names the intact
log. Damage heals (log-format.md, "Healing"): the damaged bytes kept aside
exactly, a new log opened by a heal record carrying what can be trusted, no
device aliased twice, no logout undone. A hostile ``telemetry.json`` beside
an intact log is refused and rebuilt.
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from pathlib import Path
from typing import NamedTuple

import pytest
from idstitch.adapters.sinks import RecordedAlias, RecordingSink
from idstitch.events import LogDamagedError, Record, RecordReader
from idstitch.machine import Identity, IdentityStitch, ReplayResult, State, replay
from idstitch.store import MAX_SNAPSHOT_BYTES, read_snapshot, write_snapshot
from idstitch.store._log import _tail_of
from support.reliability import count, identities_after
from support.service import DeviceIds, log_records, open_stitch

#: Byte values tried at every position through IdentityStitch.open (replay tries all 255).
OPEN_VALUES = count("open_values", 2)


class Pristine(NamedTuple):
    """A small real log, its lines, records, snapshot, and the identity after each record.

    ``snapshots[n]`` is the snapshot the service writes right after record
    ``n + 1`` (naming that record); ``devices`` every device id the log names.
    """

    data: bytes
    lines: list[bytes]
    records: list[Record]
    snapshot: bytes
    identities: list[Identity]
    snapshots: list[bytes]
    devices: frozenset[str]


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
    identities = [after[r["seq"], r["h"]] for r in records]
    lines = data.splitlines(keepends=True)
    snapshots = []
    for n, identity in enumerate(identities, start=1):
        offset = sum(len(line) for line in lines[:n])
        state = {**identity.as_dict(), "distinct_id": identity.distinct_id, "offset": offset}
        write_snapshot(state_dir / "named.json", state)
        snapshots.append((state_dir / "named.json").read_bytes())
    devices = frozenset(r[k] for r in records for k in ("device_id", "new_device_id") if k in r)
    snapshot = (state_dir / "telemetry.json").read_bytes()
    assert snapshot == snapshots[-1]
    return Pristine(data, lines, records, snapshot, identities, snapshots, devices)


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
    """What opening a damaged state dir and logging in a new user did.

    ``identity`` and ``persisting`` as opened; ``after_change`` the log after
    the login; ``kept`` every file beside the log, snapshot and lock (mode
    and bytes, by name); ``changed`` the identity after the login;
    ``aliases`` what the sink was handed.
    """

    identity: Identity
    persisting: bool
    after_change: bytes
    warnings: list[str]
    kept: dict[str, tuple[int, bytes]]
    changed: Identity
    aliases: list[RecordedAlias]


#: The files of a state dir that are not kept-aside ones.
OWN_FILES = ("identity.jsonl", "telemetry.json", "identity.lock")


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
    sink = RecordingSink()
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=sink, env={})
    identity, persisting = stitch.identity, stitch.persisting
    stitch.login("user-z")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    after_change = (state_dir / "identity.jsonl").read_bytes()
    kept = kept_files(state_dir)
    return Opened(identity, persisting, after_change, warnings, kept, stitch.identity, sink.aliases)


def kept_files(state_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of ``state_dir`` but the log, the snapshot and the lock: mode and bytes."""
    return {
        name: (stat.S_IMODE(os.stat(state_dir / name).st_mode), (state_dir / name).read_bytes())
        for name in sorted(os.listdir(state_dir))
        if name not in OWN_FILES
    }


def who(identity: Identity) -> tuple[State, str, str | None, str | None]:
    """What a heal must carry over: state, device, user and the user the device is aliased to."""
    return identity.state, identity.device_id, identity.user_id, identity.linked_user


#: Where the first heal of a state dir keeps its damaged log and snapshot.
KEPT_LOG = "identity.jsonl.damaged-1"
KEPT_SNAPSHOT = "telemetry.json.damaged-1"

#: What a heal carries when it trusts a record or snapshot: that identity's (device, user,
#: aliased-to user). ``None``: nothing could be trusted, a fresh device with no user.
Carried = tuple[str, str | None, str | None] | None


def carried_by(identity: Identity) -> Carried:
    """The device, user and aliased-to user a heal starting from ``identity`` carries."""
    return identity.device_id, identity.user_id, identity.linked_user


def heal_problems(
    opened: Opened, damaged: bytes, snapshot: bytes | None, carried: Carried, seen: frozenset[str]
) -> list[str]:
    """What is wrong with ``opened`` as the heal of ``damaged``: ``[]`` when it is one.

    A heal keeps the damaged log (and the snapshot beside it) aside byte for
    byte, 0600, as ``<name>.damaged-1``; starts a new log whose first record
    is a ``heal`` (v 2) naming the kept file and carrying ``carried`` (or a
    device no record in ``seen`` named, with no user), followed by the login
    alone; says so in one warning that names the kept file and ``idstitch
    doctor``. The login aliases a fresh device once and never a carried
    aliased one (R3); the log folds to the identity in memory.
    """
    problems: list[str] = []
    kept = {KEPT_LOG: (0o600, damaged)}  # an empty log too: it was there
    if snapshot is not None:
        kept[KEPT_SNAPSHOT] = (0o600, snapshot)
    if kept != opened.kept:
        problems.append(f"kept {sorted(opened.kept)}")
    records = [json.loads(line) for line in opened.after_change.splitlines()]
    heal = records[0] if records else {}
    device = str(heal.get("device_id"))
    if carried is None and device in seen:
        problems.append(f"healed to the seen device {device}")
    user, linked = (None, None) if carried is None else carried[1:]
    expected = (2, "heal", KEPT_LOG, carried[0] if carried else device, user, linked)
    found = tuple(heal.get(k) for k in ("v", "kind", "kept", "device_id", "user_id", "linked_user"))
    if expected != found:
        problems.append(f"heal record {found}")
    fresh_alias = linked is None
    login = [(r["kind"], r["device_id"], r["user_id"], r["alias"]) for r in records[1:]]
    if [("login", device, "user-z", fresh_alias)] != login:
        problems.append(f"after the heal {login}")
    state, aliased_to = (State.ALIASED, "user-z") if fresh_alias else (State.STAMPED, linked)
    if (state, device, "user-z", aliased_to) != who(opened.changed):
        problems.append(f"after the login {who(opened.changed)}")
    if ([RecordedAlias("user-z", device)] if fresh_alias else []) != opened.aliases:
        problems.append(f"aliases {opened.aliases}")
    folded = replay_bytes(opened.after_change)
    if (opened.changed, None) != (folded.identity, folded.error):
        problems.append("the new log does not fold to the identity in memory")
    named = f"{os.sep}{KEPT_LOG}, byte for byte"
    said = [named in w and "see `idstitch doctor " in w for w in opened.warnings]
    if ([True], True) != (said, opened.persisting):
        problems.append(f"warnings {opened.warnings}")
    return problems


@pytest.fixture
def state_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Path:
    """An empty state dir (0700), with idstitch's warnings captured."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    caplog.set_level(logging.WARNING, logger="idstitch")
    return folder


# --- every single-byte change ---------------------------------------------------------


@pytest.mark.slow
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


@pytest.mark.slow
def test_every_single_byte_change_heals_once_keeping_every_alias_and_logout(
    pristine: Pristine, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Open then log in, for 2 changed values at every byte, with and without the snapshot.

    Without the snapshot the open replays the whole log, finds the damage and
    heals at once; the damaged line could have been an alias or a logout, so
    the heal carries a fresh device and no user (the login aliases it). With
    the snapshot of the intact log the heal (at open, or at the login's
    whole-log read) carries the snapshot's identity: user-b on the device
    aliased to them, so the login only stamps. Either way the damaged bytes
    are kept aside exactly, and the one warning names the damaged seq.
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
        named = f"record seq {index + 1} at byte {offset_of(pristine, index)}"
        for value in values:
            damaged = data[:position] + bytes([value]) + data[position + 1 :]
            tried += 1
            bare = open_damaged(state_dir, damaged, None, caplog)
            problems = heal_problems(bare, damaged, None, None, pristine.devices)
            if [True] != [named in w for w in bare.warnings]:
                problems.append(f"warnings {bare.warnings}")
            with_snapshot = open_damaged(state_dir, damaged, pristine.snapshot, caplog)
            problems += [
                f"with snapshot: {problem}"
                for problem in heal_problems(
                    with_snapshot, damaged, pristine.snapshot, carried_by(final), pristine.devices
                )
            ]
            if who(final) != who(with_snapshot.identity):
                problems.append(f"with snapshot: opened as {who(with_snapshot.identity)}")
            if [True] != [named in w for w in with_snapshot.warnings]:
                problems.append(f"with snapshot: warnings {with_snapshot.warnings}")
            if problems:
                failures.append((position, value, problems))
    assert (OPEN_VALUES * len(data), []) == (tried, failures[:5])


# --- every truncation point -----------------------------------------------------------


@pytest.mark.slow
def test_every_truncation_point_is_a_torn_tail_or_a_shorter_log(
    pristine: Pristine, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cut the log at every byte (~900 cuts), replay it and open it three ways (~2,700 opens).

    Replay: the records whose bytes are all there (a last one that lost only
    its line end is whole), then torn-tail at the next seq. Open with the
    snapshot of the last whole record: the torn bytes are removed by the
    next append, or the missing line end written, everything before them is
    kept and the repair reported. Open without a snapshot: a cut at a line
    end, or one that lost only its line end, is a shorter log the login goes
    on from; after any other cut no snapshot names a record before the torn
    bytes, which could have been an alias or a logout: it heals to a fresh
    device with no user. Open with the snapshot of the whole log: a log
    shorter than its snapshot says heals, carrying the snapshot's identity
    (the good records agree with it; a fresh device when not even the
    genesis line is whole), unless all it lost is its final line end: that
    line is then completed and the change made on disk.
    """
    data = pristine.data
    final = pristine.identities[-1]
    ends = [offset_of(pristine, n) for n in range(len(pristine.lines) + 1)]
    failures: list[tuple[object, ...]] = []
    for cut in range(len(data)):
        whole = max(n for n, end in enumerate(ends) if end <= cut + 1)
        good = ends[whole]
        unended = good == cut + 1
        torn = cut != good and not unended
        result = replay_bytes(data[:cut])
        last = pristine.identities[whole - 1] if whole else None
        found = (result.identity, damage_of(result))
        if found != (last, (whole + 1, good, "torn-tail") if torn else None):
            failures.append((cut, "replay", found))
        repair = "completed the last line" if unended else f"removed {cut - good} torn bytes"
        problems: dict[str, list[str]] = {}
        if whole:
            named = open_damaged(state_dir, data[:cut], pristine.snapshots[whole - 1], caplog)
            problems["named"] = went_on(named, data[:good], last)
            if cut != good and [True] != [repair in w for w in named.warnings]:
                problems["named"].append(f"repair not reported: {named.warnings}")
        bare = open_damaged(state_dir, data[:cut], None, caplog)
        if torn:
            problems["bare"] = heal_problems(bare, data[:cut], None, None, pristine.devices)
        else:
            problems["bare"] = went_on(bare, data[:good], last)
            if unended and [True] != [repair in w for w in bare.warnings]:
                problems["bare"].append(f"repair not reported: {bare.warnings}")
        kept = open_damaged(state_dir, data[:cut], pristine.snapshot, caplog)
        if cut == len(data) - 1:  # the snapshot's own record, without its line end
            problems["with snapshot"] = went_on(kept, data, final)
        else:
            carried = carried_by(final) if whole else None
            problems["with snapshot"] = heal_problems(
                kept, data[:cut], pristine.snapshot, carried, pristine.devices
            )
        failures += [(cut, how, found) for how, found in problems.items() if found]
    assert [] == failures[:5]


def went_on(opened: Opened, before: bytes, opened_as: Identity | None) -> list[str]:
    """What is wrong with ``opened`` as a login that went on from ``before`` on disk.

    Nothing kept aside, nothing healed: the log still starts with
    ``before`` and folds, without damage, to the identity in memory (user-z
    logged in); opened as ``opened_as`` when that is given. ``[]``: all so.
    """
    problems: list[str] = []
    folded = replay_bytes(opened.after_change)
    if (True, {}, None, opened.changed, "user-z") != (
        opened.persisting,
        opened.kept,
        folded.error,
        folded.identity,
        opened.changed.user_id,
    ):
        problems.append(f"persisting {opened.persisting}, kept {sorted(opened.kept)}")
    if not opened.after_change.startswith(before):
        problems.append("the bytes before the cut were not kept")
    if opened_as is not None and opened_as != opened.identity:
        problems.append(f"opened as {opened.identity!r}")
    return problems


# --- every line deletion --------------------------------------------------------------


def test_every_line_deletion_is_found(
    pristine: Pristine, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Delete each of the 4 lines: replay stops at its seq (the last one only the snapshot sees).

    Open with the snapshot: the log lacks a record the snapshot names, so it
    heals carrying the snapshot's identity (user-b, their device aliased to
    them: the login only stamps). Open without: it heals to a fresh device
    with no user, the damaged log kept aside and one warning naming the
    damaged seq; except for a lost last line, which leaves a valid shorter
    log the login goes on from (the documented limit of a hash chain
    without its anchor).
    """
    lines = pristine.lines
    final = carried_by(pristine.identities[-1])
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
            assert [] == went_on(bare, damaged, before)
        else:
            assert [] == heal_problems(bare, damaged, None, None, pristine.devices), index
            assert [f"record seq {index + 1} at byte {offset_of(pristine, index)}"] == [
                w.split(" (")[1].split(":")[0] for w in bare.warnings
            ]
        kept = open_damaged(state_dir, damaged, pristine.snapshot, caplog)
        assert [] == heal_problems(kept, damaged, pristine.snapshot, final, pristine.devices)


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
    LogDamagedError, and the login's whole-log read heals: the damaged
    log kept aside, the snapshot's identity carried over. The next run is
    healthy and silent, and keeps nothing more aside.
    """
    lines = list(pristine.lines)
    line = lines[-2]
    junk_bytes = junk.encode()
    lines[-2] = line[: -3 - len(junk_bytes)] + junk_bytes + line[-3:]
    damaged = b"".join(lines)
    with pytest.raises(LogDamagedError):
        _tail_of(lambda at, n: damaged[at : at + n], len(damaged))
    opened = open_damaged(state_dir, damaged, pristine.snapshot, caplog)  # and log in user-z
    final = carried_by(pristine.identities[-1])
    assert [] == heal_problems(opened, damaged, pristine.snapshot, final, pristine.devices)
    caplog.clear()
    stitch = IdentityStitch.open(
        state_dir=state_dir, runtime="persistent", sink=RecordingSink(), env={}
    )
    stitch.login("user-q")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert ("user-q", True, [], opened.kept) == (
        stitch.distinct_id,
        stitch.persisting,
        warnings,
        kept_files(state_dir),
    )
