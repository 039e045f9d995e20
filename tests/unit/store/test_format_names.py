"""The state dir's format in one place: the store's names, a line's hash, the end-of-log
check, the sweep of temporaries, and the service's report of how it would open a dir."""

from __future__ import annotations

import ast
import errno
import logging
import os
import time
from pathlib import Path

import pytest
from idstitch.events._codec import START, Checkpoint, body_hash
from idstitch.service import IdentityStitch, OpenReport, Runtime, Storage, open_report
from idstitch.store import (
    LOCK_NAME,
    LOG_NAME,
    PENDING_NAME,
    SNAPSHOT_NAME,
    FileLog,
    keep_aside,
    kept_names,
    line_hash,
    pending_names,
    publish,
    sweep_state_dir,
    write_snapshot,
)
from idstitch.store._fs import ends_with, holds
from idstitch.store._line import BODY_SLICE, looks_torn
from idstitch.store._names import (
    NOTICE_NAME,
    pending_name,
    published_temporary,
    temporary_affixes,
)
from support import REPO
from support.helpers import build_log, sample_specs
from support.service import open_stitch

ROOT = REPO
#: The folders of installed code and tools that must take the state dir's names from store/.
OUTSIDE_STORE = ("events", "machine", "service", "delivery", "adapters", "audit", "bench", "fuzz")
#: The codec writes the line layout a floor below the store (test_store checks they agree).
CODEC = Path("events") / "_codec.py"
#: The file names (``SPOOL_NAME``, ``"spool"``, is also a word reports use as a label).
NAMES = {LOG_NAME, SNAPSHOT_NAME, LOCK_NAME, PENDING_NAME, NOTICE_NAME}


def _sources() -> list[Path]:
    return sorted(p for folder in OUTSIDE_STORE for p in (ROOT / folder).rglob("*.py"))


def _negative(node: ast.expr | None) -> int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = node.operand
        if isinstance(operand, ast.Constant) and type(operand.value) is int:
            return -operand.value
    return None


def test_no_code_outside_store_spells_a_state_dir_name_or_the_hash_slice() -> None:
    """No string constant outside store/ is a state dir file's name, and no slice there is a
    line's hash position ([-35:-3]): each is one fact, declared in store/."""
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in NAMES:
                found.append((str(path.relative_to(ROOT)), node.value))
            if (
                isinstance(node, ast.Slice)
                and path.relative_to(ROOT) != CODEC
                and (_negative(node.lower), _negative(node.upper)) == (-35, -3)
            ):
                found.append((str(path.relative_to(ROOT)), "[-35:-3]"))
    assert [] == found


# --- a line's hash ----------------------------------------------------------------------


def test_line_hash_is_the_hash_the_codec_wrote_with_or_without_the_line_end() -> None:
    """line_hash reads every record's own h from its line, whole or without its newline."""
    built = build_log(sample_specs(7))
    expected = [record["h"].encode() for record in built.records] * 2
    lines = built.lines + [line[:-1] for line in built.lines]
    assert expected == [line_hash(line) for line in lines]


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\n",
        b'{"v":1,"seq":1}\n',
        b'{"v":1,"seq":1,"h":"0123456789abcdef0123456789abcdeX"}\n',
        b'{"v":1,"seq":1,"x":"0123456789abcdef0123456789abcdef"}\n',
        b'{"v":1,"seq":1,"h":"0123456789ABCDEF0123456789abcdef"}\n',
    ],
)
def test_line_hash_is_none_where_no_hash_ends_the_line(line: bytes) -> None:
    """A line without a hash field of 32 lowercase hex digits at its end has no hash."""
    assert None is line_hash(line)


def test_a_lines_body_slice_is_what_its_hash_covers() -> None:
    """BODY_SLICE cuts from each line the bytes its hash links (its JSON less the closing
    brace): with the previous record's hash they hash to the line's own h."""
    built = build_log(sample_specs(7))
    previous = [START.h] + [record["h"] for record in built.records[:-1]]
    expected = [record["h"] for record in built.records]
    actual = [
        body_hash(h, line[BODY_SLICE] + b"}") for h, line in zip(previous, built.lines, strict=True)
    ]
    assert expected == actual


def test_only_the_hash_field_makes_a_cut_line_whole() -> None:
    """A cut-off record line is a tear until its hash field appears: a key that merely ends in
    h (a later version's "path") does not make it a whole record that lost its line end."""
    cut = b'{"v":9,"seq":5,"at":"x","kind":"later","path":"/tmp'
    assert [True, False] == [looks_torn(cut), looks_torn(cut + b'","h":"0123')]


# --- the end of a log -------------------------------------------------------------------


@pytest.fixture
def log(tmp_path: Path) -> FileLog:
    """A log of four records on disk."""
    path = tmp_path / LOG_NAME
    built = build_log(sample_specs(4))
    path.write_bytes(built.data)
    return FileLog(path)


def _end(log: FileLog) -> Checkpoint:
    reader = log.records()
    for _ in reader:
        pass
    return reader.checkpoint


def test_ends_with_the_last_record_only(log: FileLog) -> None:
    """True for the last record (with or without its offset); false for an earlier one, a
    wrong hash or a wrong offset."""
    end = _end(log)
    records = list(log.records())
    earlier = records[-2]
    actual = (
        log.ends_with(end.seq, end.h),
        log.ends_with(end.seq, end.h, end.offset),
        log.ends_with(earlier["seq"], earlier["h"]),
        log.ends_with(end.seq, "0" * 32),
        log.ends_with(end.seq, end.h, end.offset - 1),
        log.ends_with(end.seq - 1, end.h),
    )
    assert (True, True, False, False, False, False) == actual


@pytest.mark.parametrize("torn", [b'{"v":1,"seq":5,"at":"2026', b"\x00" * 300, b"{"])
def test_ends_with_looks_past_a_torn_write(log: FileLog, torn: bytes) -> None:
    """Bytes a crash cut off after the last record (the next append removes them) leave the
    log ending with that record."""
    end = _end(log)
    with log.path.open("ab") as f:
        f.write(torn)
    assert (True, True) == (
        log.ends_with(end.seq, end.h),
        log.ends_with(end.seq, end.h, end.offset),
    )


def test_ends_with_a_record_that_lost_only_its_line_end(log: FileLog) -> None:
    """A whole last record without its newline is the log's end; its offset is one past the
    file's end."""
    end = _end(log)
    log.path.write_bytes(log.path.read_bytes()[:-1])
    assert (True, True, False) == (
        log.ends_with(end.seq, end.h),
        log.ends_with(end.seq, end.h, end.offset),
        log.ends_with(end.seq, end.h, end.offset - 1),
    )


@pytest.mark.parametrize(
    "after",
    [
        b'{"v":1,"seq":5,"at":"x","kind":"clear","h":"0123456789abcdef0123456789abcdef"}\n',
        b'{"v":1,"seq":5,"at":"x","kind":"clear","h":"0123456789abcdef0123456789abcdef"}',
        b"garbage\n",
        b"not a record",
    ],
)
def test_ends_with_is_false_with_anything_but_a_tear_after_the_record(
    log: FileLog, after: bytes
) -> None:
    """Another line, a whole record without its newline, or foreign bytes after the record:
    it is no longer the log's end."""
    end = _end(log)
    with log.path.open("ab") as f:
        f.write(after)
    assert (False, False) == (
        log.ends_with(end.seq, end.h),
        log.ends_with(end.seq, end.h, end.offset),
    )


def test_ends_with_is_false_for_a_damaged_last_record(log: FileLog) -> None:
    """A last record whose hash was edited is not the record it was."""
    end = _end(log)
    data = log.path.read_bytes()
    edited = data[:-4] + (b"0" if data[-4:-3] != b"0" else b"1") + data[-3:]
    log.path.write_bytes(edited)
    assert (False, False) == (
        log.ends_with(end.seq, end.h),
        log.ends_with(end.seq, end.h, end.offset),
    )


def test_ends_with_is_false_for_a_missing_or_empty_log(tmp_path: Path) -> None:
    """No log, or an empty one, ends with no record."""
    path = tmp_path / LOG_NAME
    missing = ends_with(path, 1, "0" * 32), ends_with(path, 1, "0" * 32, 10)
    path.write_bytes(b"")
    assert ((False, False), (False, False)) == (
        missing,
        (ends_with(path, 1, "0" * 32), FileLog(path).ends_with(START.seq, START.h)),
    )


def test_holds_survives_appends_but_not_a_replaced_log(log: FileLog) -> None:
    """A record still ends where it did after more appends (the log only grew), not after the
    log was replaced (another process healed it)."""
    end = _end(log)
    log.append("clear", {"device_id": "9f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "pid": 1}, at=_AT)
    grown = (holds(log.file, end.seq, end.h, end.offset), log.ends_with(end.seq, end.h))
    keep_aside(log.path)
    log.path.write_bytes(build_log(sample_specs(2)).data)
    replaced = holds(log.file, end.seq, end.h, end.offset)
    assert ((True, False), False) == (grown, replaced)


_AT = "2026-12-07T00:00:00.000000Z"


# --- temporaries and published files ----------------------------------------------------


def test_publish_writes_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """A published file is there with its bytes, 0600, and its temporary is gone."""
    publish(tmp_path, "identity.pending-x", b'{"kind":"clear"}')
    path = tmp_path / "identity.pending-x"
    assert (["identity.pending-x"], b'{"kind":"clear"}', 0o600) == (
        sorted(os.listdir(tmp_path)),
        path.read_bytes(),
        path.stat().st_mode & 0o777,
    )


def test_a_pending_forgetting_is_named_by_its_token_and_found_by_pending_names() -> None:
    """A pending forgetting's file is identity.pending-<token> (log-format.md), and pending_names
    finds it among a dir's names, leaving out its temporary and every other file."""
    stamp = "20261207T000000.000000Z-0a1b2c3d"
    name = pending_name(stamp)
    listing = [LOG_NAME, published_temporary(name), name, SNAPSHOT_NAME]
    assert (f"{PENDING_NAME}-{stamp}", [name]) == (name, pending_names(listing))


def test_sweep_removes_only_the_stores_stale_temporaries(tmp_path: Path) -> None:
    """The snapshot writer's temporaries go (its writers hold the lock the sweeper holds), a
    pending writer's only when stale (a young one may be a live writer's); the state dir's
    files, kept files, others' temporaries and look-alikes stay, however old."""
    write_snapshot(tmp_path / SNAPSHOT_NAME, {"seq": 1})
    prefix, suffix = temporary_affixes(SNAPSHOT_NAME)
    stale_pending = published_temporary(pending_names(["identity.pending-old"])[0])
    swept = [f"{prefix}k1ll3d{suffix}", stale_pending]
    young = published_temporary("identity.pending-young")
    kept = [
        LOG_NAME,
        LOCK_NAME,
        SNAPSHOT_NAME,
        "identity.pending-live",
        young,
        f"{LOG_NAME}.damaged-1",
        ".other.tool.tmp",
        f"{SNAPSHOT_NAME}.tmp",
        f".{PENDING_NAME}-not-a-temporary",
    ]
    for name in swept + kept:
        if name != SNAPSHOT_NAME:
            (tmp_path / name).write_bytes(b"x")
    old = time.time() - 3600
    for name in swept + kept:
        if name != young:
            os.utime(tmp_path / name, (old, old))
    removed = sweep_state_dir(tmp_path)
    assert (sorted(swept), sorted(kept), []) == (
        sorted(removed),
        sorted(os.listdir(tmp_path)),
        sweep_state_dir(tmp_path),
    )


def test_sweep_takes_the_listing_as_any_iterable(tmp_path: Path) -> None:
    """Given the dir's names as a one-pass iterator, the sweep still removes both kinds of
    temporaries: the snapshot writer's and a stale pending forgetting's."""
    prefix, suffix = temporary_affixes(SNAPSHOT_NAME)
    swept = [f"{prefix}k1ll3d{suffix}", published_temporary("identity.pending-old")]
    for name in swept:
        (tmp_path / name).write_bytes(b"x")
    old = time.time() - 3600
    os.utime(tmp_path / swept[1], (old, old))
    removed = sweep_state_dir(tmp_path, iter(os.listdir(tmp_path)))
    assert (sorted(swept), []) == (sorted(removed), os.listdir(tmp_path))


def test_a_stale_pending_temporary_that_cannot_be_removed_is_left_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stale pending temporary the sweep cannot remove (here a directory of that name) stays
    for the next sweep, is not reported as removed, and is named in one debug message; one
    listed but gone meanwhile (its writer renamed it) is no failure and says nothing."""
    stuck, gone = (published_temporary(f"identity.pending-{n}") for n in ("stuck", "gone"))
    (tmp_path / stuck).mkdir()
    old = time.time() - 3600
    os.utime(tmp_path / stuck, (old, old))
    with caplog.at_level(logging.DEBUG, logger="idstitch.store"):
        removed = sweep_state_dir(tmp_path, [stuck, gone])
    refusal = IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    said = [f"idstitch: could not remove {tmp_path / stuck} ({refusal!r})"]
    nothing: list[str] = []
    assert (nothing, [stuck], said) == (
        removed,
        os.listdir(tmp_path),
        [r.getMessage() for r in caplog.records if r.name == "idstitch.store"],
    )


def test_kept_names_are_the_names_keep_aside_gives(tmp_path: Path) -> None:
    """kept_names lists exactly what keep_aside made of a log and a snapshot, nothing else."""
    for name in (LOG_NAME, SNAPSHOT_NAME, LOG_NAME):
        (tmp_path / name).write_bytes(b"x")
        keep_aside(tmp_path / name, "corrupt" if name == SNAPSHOT_NAME else "damaged")
    for other in (f"{LOG_NAME}.damaged-01", f"{LOCK_NAME}.damaged-1", f"{LOG_NAME}.odd-1"):
        (tmp_path / other).write_bytes(b"x")
    expected = [f"{LOG_NAME}.damaged-1", f"{LOG_NAME}.damaged-2", f"{SNAPSHOT_NAME}.corrupt-1"]
    assert expected == kept_names(os.listdir(tmp_path))


# --- how the service would open a dir ---------------------------------------------------


def _healthy(state_dir: Path) -> None:
    open_stitch(state_dir).close()


def _damaged(state_dir: Path) -> None:
    _healthy(state_dir)
    with (state_dir / LOG_NAME).open("ab") as f:
        f.write(b"garbage\n")


def _newer(state_dir: Path) -> None:
    _healthy(state_dir)
    (state_dir / SNAPSHOT_NAME).write_text('{"format":"idstitch-snapshot","version":99}')


def _host_off(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / SNAPSHOT_NAME).write_text('{"enabled": false, "device_id": "d-1"}')


def _missing(state_dir: Path) -> None:
    pass


CASES = {
    "healthy": (_healthy, Runtime.PERSISTENT, {}),
    "read-only": (_healthy, Runtime.EPHEMERAL, {}),
    "opted-out": (_healthy, Runtime.PERSISTENT, {"DO_NOT_TRACK": "1"}),
    "damaged": (_damaged, Runtime.PERSISTENT, {}),
    "damaged, read-only": (_damaged, Runtime.EPHEMERAL, {}),
    "missing": (_missing, Runtime.PERSISTENT, {}),
    "missing, read-only": (_missing, Runtime.EPHEMERAL, {}),
    "newer": (_newer, Runtime.PERSISTENT, {}),
    "host opted out": (_host_off, Runtime.PERSISTENT, {}),
}


def _listing(state_dir: Path) -> dict[str, bytes] | None:
    if not state_dir.exists():
        return None
    return {p.name: p.read_bytes() for p in state_dir.iterdir() if p.is_file()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_open_report_is_what_the_open_then_does(tmp_path: Path, case: str) -> None:
    """The report's storage state, reason and opt-out are what IdentityStitch.open then has,
    and making it wrote nothing."""
    make, runtime, env = CASES[case]
    state_dir = tmp_path / "state"
    make(state_dir)
    before = _listing(state_dir)
    report = open_report(state_dir=state_dir, runtime=runtime, env=env)
    written = _listing(state_dir)
    stitch = IdentityStitch.open(state_dir=state_dir, runtime=runtime, env=env)
    stitch.close()
    assert (before, (stitch.storage, stitch.storage_reason, stitch.opted_out)) == (
        written,
        (report.storage, report.reason, report.opted_out),
    )


def test_the_open_report_of_a_damaged_dir_in_whole(tmp_path: Path) -> None:
    """A damaged dir: a persistent run, decided by the environment variable, heals it; the
    report names the route, the state it ends in and the store's files there."""
    state_dir = tmp_path / "state"
    _damaged(state_dir)
    report = open_report(state_dir=state_dir, env={"IDSTITCH_RUNTIME": "persistent"})
    expected = OpenReport(
        state_dir=str(state_dir),
        runtime=Runtime.PERSISTENT,
        runtime_signal="IDSTITCH_RUNTIME",
        runtime_reason="override",
        runtime_provider=None,
        opted_out=False,
        route=("damage", "healed"),
        storage=Storage.HEALTHY,
        reason="damaged file kept aside; a new log carries the trusted identity",
        holds_state=True,
        files=(LOG_NAME, SNAPSHOT_NAME, LOCK_NAME),
    )
    assert expected == report


def test_the_open_report_of_no_usable_dir_is_memory(tmp_path: Path) -> None:
    """A dir others may write is never used: the report says memory and why, as the open does."""
    state_dir = tmp_path / "shared"
    state_dir.mkdir(mode=0o777)
    state_dir.chmod(0o777)
    report = open_report(state_dir=state_dir, runtime=Runtime.PERSISTENT, env={})
    stitch = IdentityStitch.open(state_dir=state_dir, runtime=Runtime.PERSISTENT, env={})
    assert ((Storage.MEMORY, ("no_dir",), None), (stitch.storage, stitch.storage_reason)) == (
        (report.storage, report.route, report.state_dir),
        (report.storage, report.reason),
    )
