"""The identity log on disk and in memory: appends, modes, lock, symlinks, damage, torn tails."""

from __future__ import annotations

import dataclasses
import errno
import logging
import multiprocessing
import os
import pickle
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idstitch.events import (
    START,
    Checkpoint,
    LogDamagedError,
    NewerFormatError,
    Record,
    encode_record,
)
from idstitch.store import (
    LOCK_NAME,
    LOG_NAME,
    PENDING_NAME,
    SNAPSHOT_NAME,
    FileLog,
    MemoryLog,
    Tail,
    TornTailRepair,
)
from support.helpers import (
    AT,
    bare_environment,
    build_log,
    checkpoint_after,
    drain,
    forge_line,
    sample_specs,
    split_lines,
)
from support.strategies import KIND_STRATEGIES, RecordSpec, examples, record_sequences, record_specs
from support.workers import SHORT_WRITE, append_beyond_file_size_limit, append_once_when_told

Spec = tuple[str, Mapping[str, object], str]

_FEW = settings(max_examples=examples(15), deadline=None)


def append_all(log: FileLog | MemoryLog, specs: Sequence[Spec]) -> list[Record]:
    """Append every spec in order; return the records."""
    return [log.append(kind, fields, at=at) for kind, fields, at in specs]


def mode_of(path: Path) -> int:
    """The permission bits of ``path`` (not following a symlink)."""
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """Where a test's log lives: a state dir that does not exist yet."""
    return tmp_path / "state" / "identity.jsonl"


# --- appends and reads --------------------------------------------------------------


@_FEW
@given(specs=record_sequences(min_size=1, max_size=5))
def test_appended_records_read_back(specs: list[RecordSpec]) -> None:
    """Every appended record reads back identically, checked and strict, and tail() is the last."""
    with tempfile.TemporaryDirectory() as directory:
        log = FileLog(Path(directory) / "state" / "identity.jsonl")
        appended = append_all(log, specs)
        end = Checkpoint(appended[-1]["seq"], appended[-1]["h"], log.path.stat().st_size)
        assert (appended, None, end) == drain(log.records())
        assert (appended, None, end) == drain(log.records(strict=True))
        assert (end, Tail(end, appended[-1], 0)) == (log.end, log.tail())


@_FEW
@given(specs=record_sequences(min_size=1, max_size=5))
def test_memory_log_holds_the_bytes_a_file_log_writes(specs: list[RecordSpec]) -> None:
    """MemoryLog and FileLog given the same appends hold byte-identical lines and records."""
    memory = MemoryLog()
    with tempfile.TemporaryDirectory() as directory:
        file_log = FileLog(Path(directory) / "identity.jsonl")
        from_file = append_all(file_log, specs)
        from_memory = append_all(memory, specs)
        assert file_log.path.read_bytes() == memory.getvalue()
        assert from_file == from_memory
        assert (file_log.tail(), file_log.end) == (memory.tail(), memory.end)
        assert drain(file_log.records()) == drain(memory.records())


def test_empty_and_missing_logs() -> None:
    """A log that does not exist has no tail, no end, and reading it raises FileNotFoundError;
    a new memory log has no tail, no end and no records."""
    with tempfile.TemporaryDirectory() as directory:
        log = FileLog(Path(directory) / "identity.jsonl")
        expected = (False, Tail(START, None, 0), (0, b""), None, f"FileLog({str(log.path)!r})")
        assert expected == (log.exists(), log.tail(), log.peek_end(), log.end, repr(log))
        with pytest.raises(FileNotFoundError):
            list(log.records())
    memory = MemoryLog()
    assert (Tail(START, None, 0), None, b"", [], "MemoryLog(0 records)") == (
        memory.tail(),
        memory.end,
        memory.getvalue(),
        list(memory.records()),
        repr(memory),
    )


def test_records_since_a_checkpoint_resume_mid_log(log_path: Path) -> None:
    """records(since=...) yields only what came after the checkpoint, from a file or memory."""
    log, memory = FileLog(log_path), MemoryLog()
    specs = sample_specs(5)
    first = append_all(log, specs[:3])
    append_all(memory, specs[:3])
    reader = log.records()
    assert first == list(reader)
    middle = reader.checkpoint
    assert (middle, middle) == (log.end, memory.end)
    later = append_all(log, specs[3:])
    append_all(memory, specs[3:])
    end = checkpoint_after(split_lines(log_path.read_bytes()), first + later, 5)
    assert (later, None, end) == drain(log.records(since=middle))
    assert (later, None, end) == drain(memory.records(since=middle))
    assert (later, None, end) == drain(log.records(since=middle, strict=True))


def test_records_checks_values_only_when_strict(log_path: Path) -> None:
    """records() checks each line's chain and shape; only records(strict=True) checks its
    values as the models do: a hash-linked line with a pid below 0 reads, then stops the
    strict read as a bad field."""
    fields = {"v": 1, "seq": 1, "at": AT, "kind": "clear", "device_id": "d", "pid": -1}
    line = forge_line(fields, START.h)
    log_path.parent.mkdir()
    log_path.write_bytes(line)
    log = FileLog(log_path)
    read = drain(log.records())
    refused = drain(log.records(strict=True)).error
    assert refused is not None
    after = Checkpoint(1, line[-35:-3].decode(), len(line))  # its hash: ..."h":"<32 hex>"}\n
    assert (([{**fields, "h": after.h}], None, after), (1, 0, "bad-field")) == (
        read,
        (refused.seq, refused.offset, refused.cause),
    )


def test_memory_log_can_continue_a_files_chain(log_path: Path) -> None:
    """MemoryLog(start=...) chains its records onto a log read from disk."""
    log = FileLog(log_path)
    on_disk = append_all(log, sample_specs(3))
    assert log.end is not None
    memory = MemoryLog(start=log.end)
    kind, fields, at = sample_specs(4)[3]
    added = memory.append(kind, fields, at=at)
    assert (4, [added]) == (added["seq"], list(memory.records()))
    whole = log_path.read_bytes() + memory.getvalue()
    log_path.write_bytes(whole)
    assert [*on_disk, added] == list(FileLog(log_path).records())


@pytest.mark.parametrize("where", ["file", "memory"])
def test_an_invalid_record_is_refused_and_nothing_is_written(log_path: Path, where: str) -> None:
    """append refuses an invalid record with ValueError and leaves the log byte for byte, on
    disk or in memory, its end the last good record's."""
    log = FileLog(log_path) if where == "file" else MemoryLog()

    def state() -> tuple[bytes, Tail, Checkpoint | None]:
        held = log_path.read_bytes() if isinstance(log, FileLog) else log.getvalue()
        return held, log.tail(), log.end

    records = append_all(log, sample_specs(2))
    before = state()
    bad_values: list[Mapping[str, object]] = [
        {"device_id": "d", "pid": -1},
        {"device_id": "", "pid": 1},
        {"device_id": "d", "pid": 2**64},
        {"device_id": "d"},
    ]
    for fields in bad_values:
        with pytest.raises(ValueError, match=r"record"):
            log.append("clear", fields, at=AT)
    with pytest.raises(ValueError, match=r"user_id"):
        log.append("enqueue_failure", {"device_id": "d", "user_id": "null", "pid": 1}, at=AT)
    assert (before, records) == (state(), list(log.records()))


# --- modes, the lock, symlinks ----------------------------------------------------------


@pytest.fixture(params=[0o022, 0o000, 0o077], ids=["umask022", "umask000", "umask077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under each umask, restoring the old one after."""
    mask: int = request.param
    old = os.umask(mask)
    try:
        yield mask
    finally:
        os.umask(old)


def test_files_are_0600_and_directories_0700(tmp_path: Path, umask: int) -> None:
    """Whatever the umask, the log and lock are 0600 and every directory created is 0700."""
    log = FileLog(tmp_path / "home" / "state" / "idstitch" / "identity.jsonl")
    append_all(log, sample_specs(1))
    paths = [
        tmp_path / "home",
        tmp_path / "home" / "state",
        tmp_path / "home" / "state" / "idstitch",
        log.path,
        log.lock_path,
    ]
    assert [0o700, 0o700, 0o700, 0o600, 0o600] == [mode_of(p) for p in paths]


def test_the_lock_file_is_created_and_never_deleted(log_path: Path) -> None:
    """identity.lock exists after an append and stays the same file across appends and locks."""
    log = FileLog(log_path)
    append_all(log, sample_specs(1))
    lock = log_path.parent / "identity.lock"
    assert (lock, True) == (log.lock_path, lock.is_file())
    inode = lock.stat().st_ino
    with log.locked():
        log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    other = FileLog(log_path)
    with other.locked():
        pass
    other.append("clear", {"device_id": "d", "pid": 2}, at=AT)
    assert (True, inode, 3) == (lock.is_file(), lock.stat().st_ino, len(list(other.records())))


def test_the_lock_is_reentrant_within_a_process(log_path: Path) -> None:
    """A caller holding the lock can append (which takes it again) and still holds it after."""
    log = FileLog(log_path)
    lock = log.locked()
    with lock:
        with lock:
            append_all(log, sample_specs(1))
        assert lock.held
    assert not lock.held


@pytest.mark.processes
def test_the_lock_keeps_another_process_waiting(log_path: Path) -> None:
    """While this process holds the lock, another process's append waits, then goes through."""
    log = FileLog(log_path)
    append_all(log, sample_specs(1))
    before = log_path.read_bytes()
    context = multiprocessing.get_context("spawn")
    ready, refused = context.Event(), context.Event()
    child = context.Process(target=append_once_when_told, args=(str(log_path), ready, refused))
    with log.locked():
        child.start()
        assert ready.wait(60)
        # It found the lock taken, and its append cannot have gone through while we hold it.
        blocked = (refused.is_set(), child.is_alive(), log_path.read_bytes())
    child.join(60)
    assert ((True, True, before), 0) == (blocked, child.exitcode)
    expected = ["genesis", "clear"]
    assert expected == [r["kind"] for r in FileLog(log_path).records()]


def test_a_memory_logs_lock_is_reentrant_and_keeps_other_threads_out() -> None:
    """While one thread holds a memory log's lock it can still append, and another thread
    cannot take the lock until it is let go."""
    log = MemoryLog()

    def taken_by_another_thread() -> bool:
        taken: list[bool] = []

        def try_it() -> None:
            taken.append(log.locked().acquire(blocking=False))
            if taken[0]:
                log.locked().release()

        thread = threading.Thread(target=try_it)
        thread.start()
        thread.join()
        return taken[0]

    with log.locked():
        records = append_all(log, sample_specs(2))
        while_held = taken_by_another_thread()
    after = taken_by_another_thread()
    assert (False, True, records) == (while_held, after, list(log.records()))


def test_a_symlink_at_the_log_path_is_refused(tmp_path: Path) -> None:
    """O_NOFOLLOW: appending through a symlink fails with ELOOP and the target is untouched."""
    target = tmp_path / "precious.txt"
    target.write_bytes(b"not a log\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "identity.jsonl").symlink_to(target)
    log = FileLog(state / "identity.jsonl")
    with pytest.raises(OSError, match=os.strerror(errno.ELOOP)) as caught:
        append_all(log, sample_specs(1))
    assert errno.ELOOP == caught.value.errno
    with pytest.raises(OSError, match=os.strerror(errno.ELOOP)):
        list(log.records())
    assert (b"not a log\n", True) == (target.read_bytes(), log.path.is_symlink())


# --- truncation and torn tails --------------------------------------------------------


@pytest.mark.slow
def test_truncation_at_every_byte_yields_the_longest_valid_prefix(log_path: Path) -> None:
    """Cut a 5-record log at every offset: reads yield every record whose bytes are all there
    (a last one missing only its line end included), then stop at a torn tail."""
    built = build_log(sample_specs(5))
    ends = [sum(len(line) for line in built.lines[:n]) for n in range(6)]
    log = FileLog(log_path)
    log_path.parent.mkdir(mode=0o700)
    for cut in range(len(built.data) + 1):
        log_path.write_bytes(built.data[:cut])
        whole = max(n for n in range(6) if ends[n] <= cut + 1)
        unended = ends[whole] == cut + 1
        at = checkpoint_after(built.lines, built.records, whole)
        outcome = drain(log.records())
        assert (built.records[:whole], at) == (outcome.records, outcome.checkpoint), cut
        last = built.records[whole - 1] if whole else None
        last_line = built.lines[whole - 1][: -1 if unended else None] if whole else b""
        torn = 0 if unended else cut - at.offset
        assert (Tail(at, last, torn, unended), (cut, last_line)) == (
            log.tail(),
            log.peek_end(),
        ), cut
        if cut == at.offset or unended:
            assert outcome.error is None, cut
        else:
            assert outcome.error is not None, cut
            expected = (LogDamagedError, whole + 1, at.offset, "torn-tail")
            actual = (type(outcome.error), outcome.error.seq, outcome.error.offset)
            assert expected == (*actual, outcome.error.cause), cut


@pytest.mark.parametrize("good", [0, 3], ids=["first-line-torn", "after-3"])
@pytest.mark.parametrize("keep", [1, 2, 0.5, -2], ids=["1", "2", "half", "len-2"])
def test_a_torn_tail_is_reported_then_removed_by_the_next_append(
    log_path: Path, caplog: pytest.LogCaptureFixture, good: int, keep: float
) -> None:
    """A cut-off last line reads as torn-tail; the next append removes exactly it and says so."""
    specs = sample_specs(good + 1)
    log = FileLog(log_path)
    kept = append_all(log, specs[:good])
    prefix = log_path.read_bytes() if good else b""
    log_path.parent.mkdir(mode=0o700, exist_ok=True)
    kind, fields, at = specs[good]
    whole_line, _ = encode_record(
        checkpoint_after(split_lines(prefix), kept, good), at=at, kind=kind, fields=fields
    )
    torn = int(keep * len(whole_line)) if 0 < keep < 1 else int(keep) % len(whole_line)
    log_path.write_bytes(prefix + whole_line[:torn])

    outcome = drain(log.records())
    assert outcome.error is not None
    expected = (kept, good + 1, len(prefix), "torn-tail")
    assert expected == (
        outcome.records,
        outcome.error.seq,
        outcome.error.offset,
        outcome.error.cause,
    )

    with caplog.at_level(logging.WARNING, logger="idstitch"):
        added = log.append("clear", {"device_id": "d-after", "pid": 9}, at=AT)

    assert [TornTailRepair(str(log_path), len(prefix), torn, good + 1)] == log.repairs
    message = (
        f"idstitch: removed {torn} torn bytes at offset {len(prefix)} of {log_path} "
        f"(record seq {good + 1} was never completed; every record before it is intact)"
    )
    assert [("idstitch.store", logging.WARNING, message)] == caplog.record_tuples
    new_line = encode_record(
        checkpoint_after(split_lines(prefix), kept, good),
        at=AT,
        kind="clear",
        fields={"device_id": "d-after", "pid": 9},
    )[0]
    assert prefix + new_line == log_path.read_bytes()
    end = Checkpoint(good + 1, added["h"], len(prefix) + len(new_line))
    assert ([*kept, added], None, end) == drain(log.records())


#: One log ending in each kind of record: (how many sample records come first, the last one).
_LAST_OF_EACH_KIND: list[tuple[int, Spec]] = [
    *((index, sample_specs(index + 1)[index]) for index in range(6)),
    (0, ("import", {"device_id": "d-imported", "user_id": None, "aliased": False}, AT)),
]


@pytest.mark.parametrize(
    ("before", "last"),
    _LAST_OF_EACH_KIND,
    ids=[spec[0] for _, spec in _LAST_OF_EACH_KIND],
)
def test_a_whole_last_record_missing_its_line_end_is_read_then_completed(
    log_path: Path, caplog: pytest.LogCaptureFixture, before: int, last: Spec
) -> None:
    """A whole last record that lost only its \\n is read as good, then kept byte for byte:
    the next append writes the \\n and chains its record after it (genesis alone included)."""
    log = FileLog(log_path)
    records = append_all(log, [*sample_specs(before), last])
    whole = log_path.read_bytes()
    log_path.write_bytes(whole[:-1])
    end = Checkpoint(records[-1]["seq"], records[-1]["h"], len(whole))
    assert (records, None, end) == drain(log.records())
    assert (records, None, end) == drain(log.records(strict=True))
    last_line = split_lines(whole)[-1]
    assert (Tail(end, records[-1], 0, True), (len(whole) - 1, last_line[:-1])) == (
        log.tail(),
        log.peek_end(),
    )

    with caplog.at_level(logging.WARNING, logger="idstitch"):
        added = log.append("clear", {"device_id": "d-after", "pid": 9}, at=AT)

    new_line, _ = encode_record(end, at=AT, kind="clear", fields={"device_id": "d-after", "pid": 9})
    message = (
        f"idstitch: completed the last line of {log_path} (record seq {len(records)} had lost "
        "its line end; the record is kept as it was)"
    )
    assert (whole + new_line, [], [("idstitch.store", logging.WARNING, message)]) == (
        log_path.read_bytes(),
        log.repairs,
        caplog.record_tuples,
    )
    after = Checkpoint(added["seq"], added["h"], len(whole) + len(new_line))
    assert ([*records, added], None, after) == drain(log.records(strict=True))
    assert (after, Tail(after, added, 0)) == (log.end, log.tail())


@pytest.mark.parametrize("end", ["unended", "torn"])
def test_a_tail_survives_pickling_whole(log_path: Path, end: str) -> None:
    """A log's tail crosses a process boundary (pickle) as the same Tail: checkpoint, record,
    torn bytes and whether the record lost its line end."""
    log = FileLog(log_path)
    append_all(log, sample_specs(2))
    whole = log_path.read_bytes()
    log_path.write_bytes(whole[:-1] if end == "unended" else whole + b'{"v":1,"seq":3')
    tail = log.tail()
    copy = pickle.loads(pickle.dumps(tail))  # noqa: S301 - our own bytes, just made
    assert (Tail, tail, tail.unended) == (type(copy), copy, copy.unended)


def test_reading_on_from_an_unended_records_checkpoint_finds_the_next_record(
    log_path: Path,
) -> None:
    """The checkpoint of a record missing its \\n is where the next record starts once completed."""
    log = FileLog(log_path)
    records = append_all(log, sample_specs(2))
    log_path.write_bytes(log_path.read_bytes()[:-1])
    reader = log.records()
    assert records == list(reader)
    other = FileLog(log_path)  # another process appends after it
    added = other.append("clear", {"device_id": "d", "pid": 3}, at=AT)
    assert ([added], None, other.end) == drain(log.records(since=reader.checkpoint))


def test_complete_line_writes_only_the_missing_line_end(log_path: Path) -> None:
    """complete_line() writes one \\n after a whole unended record, once; otherwise nothing."""
    log = FileLog(log_path)
    assert (False, False) == (log.complete_line(), log_path.exists())
    append_all(log, sample_specs(3))
    whole = log_path.read_bytes()
    assert (False, whole) == (log.complete_line(), log_path.read_bytes())
    log_path.write_bytes(whole[:-1])
    assert (True, whole) == (log.complete_line(), log_path.read_bytes())
    assert (False, whole, []) == (log.complete_line(), log_path.read_bytes(), log.repairs)
    torn = whole + b'{"v":1,"seq":4,"at"'
    log_path.write_bytes(torn)
    assert (False, torn) == (log.complete_line(), log_path.read_bytes())


def test_complete_line_refuses_a_damaged_last_record(log_path: Path) -> None:
    """complete_line() raises LogDamagedError for a damaged last record and writes nothing."""
    log = FileLog(log_path)
    append_all(log, sample_specs(3))
    damaged = _damage_last_line(log_path.read_bytes(), "hash")[:-1]
    log_path.write_bytes(damaged)
    with pytest.raises(LogDamagedError) as caught:
        log.complete_line()
    assert ((3, "hash-chain"), damaged) == (
        (caught.value.seq, caught.value.cause),
        log_path.read_bytes(),
    )


@pytest.mark.parametrize("how", ["body-byte", "hash"])
def test_an_unended_whole_line_that_does_not_check_is_damage_not_torn(
    log_path: Path, how: str
) -> None:
    """A whole-length last line without \\n whose hash fails is no cut-off write: kept, refused."""
    log = FileLog(log_path)
    kept = append_all(log, sample_specs(3))[:2]
    damaged = _damage_last_line(log_path.read_bytes(), how)[:-1]
    log_path.write_bytes(damaged)
    outcome = drain(log.records())
    assert outcome.error is not None
    assert (kept, 3, "hash-chain") == (outcome.records, outcome.error.seq, outcome.error.cause)
    with pytest.raises(LogDamagedError):
        log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    assert (damaged, []) == (log_path.read_bytes(), log.repairs)


#: Records of every kind but a heal, which only ever starts a log (its cut-off start,
#: ``{"v":2,"seq":N,``, is torn only as seq 1), and a first record of every kind but an
#: alias_dropped or a consent, which never do (``{"v":3,"seq":1,`` and ``{"v":4,"seq":1,``
#: are no cut-off writes).
_MID_LOG_SPECS = record_specs(st.sampled_from(sorted(set(KIND_STRATEGIES) - {"heal"})))
_FIRST_SPECS = record_specs(
    st.sampled_from(sorted(set(KIND_STRATEGIES) - {"alias_dropped", "consent"}))
)
_LOG_SPECS = st.tuples(_FIRST_SPECS, st.lists(_MID_LOG_SPECS, max_size=3)).map(
    lambda t: [t[0], *t[1]]
)


@settings(max_examples=examples(40), deadline=None)
@given(specs=_LOG_SPECS, data=st.data())
def test_an_append_after_any_cut_never_removes_a_whole_record(
    specs: list[RecordSpec], data: st.DataObject
) -> None:
    """Cut a valid log anywhere and append: every record whose bytes were all there (its \\n
    aside) stays byte for byte, and only a strict prefix of the next record is removed."""
    built = build_log(specs)
    cut = data.draw(st.integers(0, len(built.data)), label="cut")
    ends = [sum(len(line) for line in built.lines[:n]) for n in range(len(specs) + 1)]
    whole = max(n for n in range(len(specs) + 1) if ends[n] <= cut + 1)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "identity.jsonl"
        path.write_bytes(built.data[:cut])
        log = FileLog(path)
        added = log.append("clear", {"device_id": "d-after", "pid": 9}, at=AT)
        at = checkpoint_after(built.lines, built.records, whole)
        new_line, _ = encode_record(
            at, at=AT, kind="clear", fields={"device_id": "d-after", "pid": 9}
        )
        torn = [TornTailRepair(str(path), at.offset, cut - at.offset, whole + 1)]
        assert (built.data[: at.offset] + new_line, torn if cut > at.offset else []) == (
            path.read_bytes(),
            log.repairs,
        )
        assert [*built.records[:whole], added] == list(log.records(strict=True))


def _damage_last_line(data: bytes, how: str) -> bytes:
    lines = split_lines(data)
    last = lines[-1]
    if how == "body-byte":
        damaged = last[:10] + (b"X" if last[10:11] != b"X" else b"Y") + last[11:]
    elif how == "hash":
        damaged = last[:-4] + (b"0" if last[-4:-3] != b"0" else b"1") + last[-3:]
    elif how == "garbage":
        damaged = b"garbage\n"
    elif how == "long-garbage":
        damaged = b"x" * 20_000 + b"\n"  # longer than the tail reader's first window
    else:
        raise AssertionError(how)
    return b"".join(lines[:-1]) + damaged


@pytest.mark.parametrize("how", ["body-byte", "hash", "garbage", "long-garbage"])
def test_append_refuses_after_a_damaged_last_record(log_path: Path, how: str) -> None:
    """A damaged last record (edited, bad hash, garbage) makes append refuse, file untouched."""
    log = FileLog(log_path)
    append_all(log, sample_specs(3))
    log_path.write_bytes(_damage_last_line(log_path.read_bytes(), how))
    before = log_path.read_bytes()
    prefix_end = len(b"".join(split_lines(before)[:2]))
    with pytest.raises(LogDamagedError) as caught:
        log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    no_repairs: list[TornTailRepair] = []
    expected = (LogDamagedError, 3, prefix_end, before, no_repairs)
    actual = (type(caught.value), caught.value.seq, caught.value.offset, log_path.read_bytes())
    assert expected == (*actual, log.repairs)


def test_append_never_rewrites_a_torn_tail_behind_damage(log_path: Path) -> None:
    """With a damaged last line and torn bytes after it, append refuses and removes nothing."""
    log = FileLog(log_path)
    append_all(log, sample_specs(3))
    damaged = _damage_last_line(log_path.read_bytes(), "hash") + b'{"v":1,"seq":4,'
    log_path.write_bytes(damaged)
    with pytest.raises(LogDamagedError):
        log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    assert (damaged, []) == (log_path.read_bytes(), log.repairs)


@pytest.mark.parametrize(
    "tail",
    [b"# edited by hand", b'{"note":"another tool"}', b'{"v":1,"seq":3,"at"', b'{"v":2,', b" "],
    ids=["comment", "json-object", "wrong-seq", "other-version", "space"],
)
def test_bytes_that_no_write_of_ours_left_are_damage_not_a_torn_tail(
    log_path: Path, tail: bytes
) -> None:
    """Only the start of the next record can be a cut-off write: other bytes are kept, reported."""
    log = FileLog(log_path)
    kept = append_all(log, sample_specs(3))
    whole = log_path.read_bytes()
    log_path.write_bytes(whole + tail)
    outcome = drain(log.records())
    assert outcome.error is not None
    assert (kept, 4, len(whole), "bad-json") == (
        outcome.records,
        outcome.error.seq,
        outcome.error.offset,
        outcome.error.cause,
    )
    with pytest.raises(LogDamagedError):
        log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    assert (whole + tail, []) == (log_path.read_bytes(), log.repairs)


def test_a_run_of_nul_bytes_at_the_end_is_a_torn_tail(log_path: Path) -> None:
    """What a power cut can leave (the size grown, the data not): removed by the next append."""
    log = FileLog(log_path)
    kept = append_all(log, sample_specs(3))
    whole = log_path.read_bytes()
    log_path.write_bytes(whole + bytes(100))
    outcome = drain(log.records())
    assert outcome.error is not None
    assert (kept, 4, "torn-tail") == (outcome.records, outcome.error.seq, outcome.error.cause)
    log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    assert [TornTailRepair(str(log_path), len(whole), 100, 4)] == log.repairs
    assert log_path.read_bytes().startswith(whole + b'{"v":1,"seq":4,')


def test_a_repairs_report_cannot_be_changed_afterwards(log_path: Path) -> None:
    """The report of a torn tail removed is a value: setting a field raises, and it hashes, so
    a caller can keep it (in a set, as a key) as the record of what the append did."""
    log = FileLog(log_path)
    append_all(log, sample_specs(2))
    whole = log_path.read_bytes()
    log_path.write_bytes(whole + b'{"v":1,"seq":3,')
    log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    [repair] = log.repairs
    with pytest.raises(dataclasses.FrozenInstanceError):
        repair.length = 0  # type: ignore[misc]
    expected = TornTailRepair(str(log_path), len(whole), 15, 3)
    assert ({expected}, expected) == ({repair}, repair)


def test_append_refuses_when_the_line_before_the_last_lost_its_line_end(log_path: Path) -> None:
    """A line end turned into a carriage return joins two lines: the last line is then damaged."""
    log = FileLog(log_path)
    append_all(log, sample_specs(4))
    lines = split_lines(log_path.read_bytes())
    damaged = b"".join([*lines[:2], lines[2][:-1] + b"\r", lines[3]])
    log_path.write_bytes(damaged)
    with pytest.raises(LogDamagedError) as caught:
        log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    offset = len(lines[0]) + len(lines[1])
    assert (3, offset, damaged) == (caught.value.seq, caught.value.offset, log_path.read_bytes())


def test_append_refuses_after_a_newer_version_record(log_path: Path) -> None:
    """L8: after a record of a newer version, append raises NewerFormatError and writes nothing."""
    log = FileLog(log_path)
    records = append_all(log, sample_specs(2))
    newer = {"v": 5, "seq": 3, "at": AT, "kind": "merge", "device_id": "d"}
    log_path.write_bytes(log_path.read_bytes() + forge_line(newer, records[-1]["h"]))
    before = log_path.read_bytes()
    with pytest.raises(NewerFormatError) as caught:
        log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
    assert (3, "newer-version", before) == (
        caught.value.seq,
        caught.value.cause,
        log_path.read_bytes(),
    )


@settings(max_examples=examples(30), deadline=None)
@given(data=st.data())
def test_any_change_in_the_last_line_makes_append_refuse(data: st.DataObject) -> None:
    """Changing any byte of the last record (not its newline) makes append refuse, file as is."""
    built = build_log(sample_specs(4))
    start = len(built.data) - len(built.lines[-1])
    position = data.draw(st.integers(start, len(built.data) - 2), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != built.data[position]), label="byte")
    damaged = built.data[:position] + bytes([byte]) + built.data[position + 1 :]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "identity.jsonl"
        path.write_bytes(damaged)
        log = FileLog(path)
        with pytest.raises(LogDamagedError) as caught:
            log.append("clear", {"device_id": "d", "pid": 1}, at=AT)
        assert (4, damaged, []) == (caught.value.seq, path.read_bytes(), log.repairs)


def test_peek_end_holds_the_widest_record_whole(log_path: Path) -> None:
    """The widest line a valid record can take (two 200-character, 800-byte ids) fits the window."""
    log = FileLog(log_path)
    append_all(log, sample_specs(2))
    wide = "\U0001f600" * 200  # 200 characters, 800 bytes of UTF-8
    log.append("logout", {"device_id": wide, "new_device_id": wide, "pid": 1}, at=AT)
    size = log_path.stat().st_size
    last_line = split_lines(log_path.read_bytes())[-1]
    assert (True, (size, last_line)) == (len(last_line) > 1600, log.peek_end())
    assert log.tail().record == list(log.records())[-1]


def test_peek_end_never_returns_part_of_a_line(log_path: Path) -> None:
    """A last line longer than the window (no valid record is) gives b"", not a piece of it."""
    long_line = b'{"x":"' + b"a" * 5000 + b'"}\n'
    log_path.parent.mkdir()
    log_path.write_bytes(b'{"first":1}\n' + long_line)
    size = log_path.stat().st_size
    assert (size, b"") == FileLog(log_path).peek_end()
    log_path.write_bytes(long_line[-3000:] + b'{"short":1}\n')
    assert (3000 + 12, b'{"short":1}\n') == FileLog(log_path).peek_end()


@pytest.mark.processes
@pytest.mark.parametrize(("room", "exit_code"), [(0, errno.EFBIG), (40, SHORT_WRITE)])
def test_an_append_cut_short_leaves_the_log_as_it_was(
    log_path: Path, room: int, exit_code: int
) -> None:
    """A write refused (EFBIG) or cut short by the file size limit is undone: log unchanged."""
    log = FileLog(log_path)
    records = append_all(log, sample_specs(3))
    before = log_path.read_bytes()
    child = multiprocessing.get_context("spawn").Process(
        target=append_beyond_file_size_limit, args=(str(log_path), room)
    )
    child.start()
    child.join(60)
    assert (exit_code, before) == (child.exitcode, log_path.read_bytes())
    assert (records, None) == drain(log.records())[:2]


@pytest.mark.parametrize(
    ("name", "lock"),
    [
        ("identity.jsonl", "identity.lock"),
        ("audit", "audit.lock"),
        ("run.lock", "run.lock.lock"),
        ("a.b", "a.lock"),  # the shortest name with a suffix
        (".jsonl", ".jsonl.lock"),  # a hidden file's name is all stem, as for Path.with_suffix
        ("log.", "log..lock"),  # a trailing dot is no suffix
    ],
)
def test_the_lock_file_is_never_the_log_itself(tmp_path: Path, name: str, lock: str) -> None:
    """The lock sits beside the log under the log's name with ``.lock``, never on the log."""
    log = FileLog(tmp_path / name)
    log.append("genesis", {"device_id": "d-1", "runtime": "persistent"}, at=AT)
    assert (tmp_path / lock, 1) == (log.lock_path, len(list(log.records(strict=True))))


# --- the state dir's file names ----------------------------------------------------------


def test_the_state_dir_file_names_are_the_specs(tmp_path: Path) -> None:
    """The names are those of log-format.md, and a FileLog of LOG_NAME locks LOCK_NAME."""
    log = FileLog(tmp_path / LOG_NAME)
    names = (LOG_NAME, SNAPSHOT_NAME, LOCK_NAME, PENDING_NAME, log.lock_path.name)
    expected = ("identity.jsonl", "telemetry.json", "identity.lock", "identity.pending")
    assert (*expected, "identity.lock") == names


@pytest.mark.processes
def test_the_file_names_load_nothing_heavy() -> None:
    """Importing the names (on every start-up path) loads neither pathlib, logging nor the log."""
    script = (
        "import sys\n"
        "from idstitch.store import LOCK_NAME, LOG_NAME, PENDING_NAME, SNAPSHOT_NAME\n"
        "heavy = ('pathlib', 'logging', 'weakref', 'idstitch.store._log', 'orjson')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=bare_environment(),
    )
    assert (0, "[]\n", "") == (result.returncode, result.stdout, result.stderr)


def test_peek_end_knows_the_line_shape_the_codec_writes() -> None:
    """The start-up peek's "h" field shape is the codec's (one format fact, checked here)."""
    from idstitch.events import _codec
    from idstitch.store import _line

    assert (_codec._H_KEY, _codec._H_TAIL_LEN - 1) == (_line.HASH_KEY, _line.UNENDED_TAIL)
