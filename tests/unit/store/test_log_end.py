"""The start-up checks of a log's end (peek_end, ends_with, holds) on logs longer than the
one window of bytes they read, and with a record whose offset they are told."""

from __future__ import annotations

from pathlib import Path

import pytest
from idstitch.events import START, Checkpoint, LogDamagedError, Record
from idstitch.store import LOG_NAME, FileLog, MemoryLog, Tail
from idstitch.store._fs import PEEK_WINDOW, ends_with, holds, last_line, peek_end
from support.helpers import AT, build_log, drain, forge_line, sample_specs, split_lines

#: Enough records that the log is several windows long.
COUNT = 120


@pytest.fixture
def long_log(tmp_path: Path) -> tuple[Path, list[Record], list[bytes]]:
    """A log of COUNT records, longer than three peek windows: its path, records and lines."""
    built = build_log(sample_specs(COUNT))
    path = tmp_path / LOG_NAME
    path.write_bytes(built.data)
    assert len(built.data) > 3 * PEEK_WINDOW
    return path, built.records, split_lines(built.data)


def end_of(lines: list[bytes], count: int) -> int:
    """The offset just after the first ``count`` lines."""
    return sum(len(line) for line in lines[:count])


def test_a_long_logs_end_is_found_from_its_last_window(
    long_log: tuple[Path, list[Record], list[bytes]],
) -> None:
    """peek_end and ends_with read only the end of a long log, and find its last record."""
    path, records, lines = long_log
    last = records[-1]
    size = end_of(lines, COUNT)
    assert ((size, lines[-1]), True, True, False) == (
        peek_end(path),
        ends_with(path, last["seq"], last["h"]),
        ends_with(path, last["seq"], last["h"], size),
        ends_with(path, records[-2]["seq"], records[-2]["h"]),
    )


def test_a_long_logs_earlier_record_is_held_at_its_offset(
    long_log: tuple[Path, list[Record], list[bytes]],
) -> None:
    """holds finds a record far from both ends of a long log at its offset, and only there;
    ends_with says the log no longer ends with it."""
    path, records, lines = long_log
    middle = COUNT // 2
    record, offset = records[middle - 1], end_of(lines, middle)
    assert offset > PEEK_WINDOW
    assert (True, False, False, False) == (
        holds(path, record["seq"], record["h"], offset),
        holds(path, record["seq"], record["h"], offset - 1),
        holds(path, record["seq"] + 1, record["h"], offset),
        ends_with(path, record["seq"], record["h"], offset),
    )


@pytest.mark.parametrize("offset", [0, -1, 10**6])
def test_holds_is_false_for_an_offset_outside_the_log(
    long_log: tuple[Path, list[Record], list[bytes]], offset: int
) -> None:
    """No record ends before the file starts or past its end (plus the one line end it may
    have lost)."""
    path, records, _ = long_log
    assert (False, False) == (
        holds(path, records[0]["seq"], records[0]["h"], offset),
        ends_with(path, records[-1]["seq"], records[-1]["h"], offset),
    )


def test_the_first_record_of_a_log_is_held_at_its_offset(
    long_log: tuple[Path, list[Record], list[bytes]],
) -> None:
    """The first line has no line before it: holds still finds it (the window starts the file)."""
    path, records, lines = long_log
    assert (True, False) == (
        holds(path, 1, records[0]["h"], len(lines[0])),
        holds(path, 1, records[0]["h"], len(lines[0]) + 1),
    )


def test_an_unended_record_is_held_one_past_the_files_end(
    long_log: tuple[Path, list[Record], list[bytes]],
) -> None:
    """A last record that lost its line end ends, as a checkpoint, one byte past the file."""
    path, records, lines = long_log
    path.write_bytes(path.read_bytes()[:-1])
    size = end_of(lines, COUNT) - 1
    last = records[-1]
    assert (True, False, True) == (
        holds(path, last["seq"], last["h"], size + 1),
        holds(path, last["seq"], last["h"], size),
        ends_with(path, last["seq"], last["h"], size + 1),
    )


def test_more_than_a_window_after_the_record_is_not_a_torn_write(
    long_log: tuple[Path, list[Record], list[bytes]],
) -> None:
    """ends_with at an offset: a window's worth of NULs after it could be a tear, more cannot."""
    path, records, lines = long_log
    last, size = records[-1], end_of(lines, COUNT)
    whole = path.read_bytes()
    path.write_bytes(whole + bytes(PEEK_WINDOW))
    within = ends_with(path, last["seq"], last["h"], size)
    path.write_bytes(whole + bytes(PEEK_WINDOW + 1))
    assert (True, False) == (within, ends_with(path, last["seq"], last["h"], size))


@pytest.mark.parametrize("beyond", [1, 2])
def test_no_record_ends_past_a_whole_logs_end(
    long_log: tuple[Path, list[Record], list[bytes]], beyond: int
) -> None:
    """A log whose last line is whole ends at its size: an offset past it names nothing."""
    path, records, lines = long_log
    last, size = records[-1], end_of(lines, COUNT)
    assert (False, False) == (
        holds(path, last["seq"], last["h"], size + beyond),
        ends_with(path, last["seq"], last["h"], size + beyond),
    )


@pytest.mark.parametrize("length", [PEEK_WINDOW + 1, 5 * PEEK_WINDOW])
def test_a_line_longer_than_a_window_is_never_a_record(tmp_path: Path, length: int) -> None:
    """A last line longer than any record (its start beyond the window, if only by a byte) is
    not read as one, even when its window starts with a seq and it ends with the hash asked
    for."""
    h = "0123456789abcdef" * 2
    start, end = b'{"v":1,"seq":2,"pad":"', b'","h":"' + h.encode() + b'"}\n'
    filler = b'"seq":2,' * length
    line = start + filler[: length - len(start) - len(end)] + end
    path = tmp_path / LOG_NAME
    path.write_bytes(line)
    assert length == len(line)
    assert ((len(line), b""), False, False, False) == (
        peek_end(path),
        holds(path, 2, h, len(line)),
        ends_with(path, 2, h, len(line)),
        ends_with(path, 2, h),
    )


def test_a_log_of_one_record_ends_with_it(tmp_path: Path) -> None:
    """The only line of a log starts the file, and is its last line."""
    built = build_log(sample_specs(1))
    path = tmp_path / LOG_NAME
    path.write_bytes(built.data)
    only = built.records[0]
    assert ((len(built.data), built.data), True, True) == (
        peek_end(path),
        ends_with(path, 1, only["h"]),
        ends_with(path, 1, only["h"], len(built.data)),
    )


@pytest.mark.parametrize(
    "after",
    [b'{"v":1,"seq":2,"at":"x"}', b'{"v":1,"seq":2,"h":"' + b"0" * 32 + b'"'],
    ids=["no-hash-field", "no-closing-brace"],
)
def test_only_a_whole_record_shape_is_taken_for_a_line_that_lost_its_end(after: bytes) -> None:
    """Bytes after the last line end are a record that lost its line end only if they end in its
    hash field and closing brace; anything else is left out, and the line before is the last."""
    whole = b'{"v":1,"seq":1,"h":"' + b"1" * 32 + b'"}\n'
    assert whole == last_line(whole + after)


def test_last_line_of_a_window_cut_from_a_longer_file() -> None:
    """In a window cut from the middle of a file, the first piece is never a whole line."""
    data = b'rest of a line"}\n{"v":1,"seq":9,"h":"x"}\n'
    assert (b'{"v":1,"seq":9,"h":"x"}\n', b"", b'rest of a line"}\n') == (
        last_line(data, cut=True),
        last_line(data[:17], cut=True),
        last_line(data[:17]),
    )


@pytest.mark.parametrize(
    ("data", "cut", "last"),
    [
        (b"\n", False, b"\n"),
        (b'{"v":1}\n\n', False, b"\n"),
        (b'\n{"v":1,"seq":9}\n', False, b'{"v":1,"seq":9}\n'),
        (b'\n{"v":1,"seq":9}\n', True, b'{"v":1,"seq":9}\n'),
    ],
    ids=["one-empty-line", "empty-last-line", "line-end-first", "line-end-first-of-window"],
)
def test_the_last_line_starts_just_after_the_line_end_before_it(
    data: bytes, cut: bool, last: bytes
) -> None:
    """The last line runs from the line end before it (even at the data's first byte) to its
    own; an empty last line is that line (a lone line end), not b"" (no line), nor more."""
    assert last == last_line(data, cut=cut)


def test_a_missing_log_holds_no_record(tmp_path: Path) -> None:
    """holds answers False (a bool, as for any log without the record) when there is no log."""
    h = "0123456789abcdef" * 2
    assert (False, False) == (
        holds(tmp_path / LOG_NAME, 1, h, 10),
        ends_with(tmp_path / LOG_NAME, 1, h, 10),
    )


def test_checkpoints_name_the_offsets_the_tests_use(
    long_log: tuple[Path, list[Record], list[bytes]],
) -> None:
    """The offsets above are the reader's own checkpoints (a check of this module's helper)."""
    path, records, lines = long_log
    reader = FileLog(path).records()
    assert records == list(reader)
    assert Checkpoint(COUNT, records[-1]["h"], end_of(lines, COUNT)) == reader.checkpoint


@pytest.mark.parametrize(
    "damage",
    [
        (b',"h":"', b',"x":"'),  # the line before the last has no hash field
        (b'{"v":1,', b"{v:1,"),  # the line before the last is no JSON
    ],
    ids=["no-hash", "not-json"],
)
def test_a_damaged_line_before_the_last_stops_tail_and_append(
    tmp_path: Path, damage: tuple[bytes, bytes]
) -> None:
    """tail reads the whole log when the line before the last is damaged, and reports that
    line's seq; an append writes nothing."""
    built = build_log(sample_specs(3))
    lines = split_lines(built.data)
    lines[1] = lines[1].replace(*damage)
    path = tmp_path / LOG_NAME
    path.write_bytes(b"".join(lines))
    log = FileLog(path)
    with pytest.raises(LogDamagedError) as tail_error:
        log.tail()
    with pytest.raises(LogDamagedError) as append_error:
        log.append("clear", {"device_id": "d", "pid": 1}, at=built.records[0]["at"])
    assert (2, 2, b"".join(lines)) == (
        tail_error.value.seq,
        append_error.value.seq,
        path.read_bytes(),
    )


@pytest.mark.parametrize("damage", ["in-the-first-line", "seq-0-before-the-last"])
def test_tail_checks_the_last_line_against_the_one_before_and_reads_no_further(
    tmp_path: Path, damage: str
) -> None:
    """tail checks the last line against the seq and hash the line before it names, and reads
    no further back: damage earlier in the log (a changed byte in the first line), or a line
    before the last that no writer makes (naming seq 0), is the full read's to find."""
    if damage == "in-the-first-line":
        built = build_log(sample_specs(3))
        lines = list(built.lines)
        lines[0] = lines[0].replace(b'"persistent"', b'"persistenT"')
        last = built.records[-1]
    else:
        opening = {"v": 1, "seq": 0, "at": AT, "kind": "genesis", "device_id": "d", "runtime": "p"}
        first = forge_line(opening, START.h)
        after_it = MemoryLog(start=Checkpoint(0, first[-35:-3].decode(), 0))  # its "h" value
        last = after_it.append("clear", {"device_id": "d", "pid": 1}, at=AT)
        lines = [first, after_it.getvalue()]
    path = tmp_path / LOG_NAME
    path.write_bytes(b"".join(lines))
    log = FileLog(path)
    found = drain(log.records()).error
    assert found is not None
    end = Checkpoint(last["seq"], last["h"], path.stat().st_size)
    assert (Tail(end, last, 0), (1, 0)) == (log.tail(), (found.seq, found.offset))


@pytest.mark.parametrize("junk", ["beyond-the-chunk", "all-the-chunk-holds-whole"])
def test_a_last_line_longer_than_a_chunk_is_checked_against_the_record_before_it(
    tmp_path: Path, junk: str
) -> None:
    """A last line of junk too long for tail's first read to hold the record before it too is
    damage at the next seq, found by reading further back for that record."""
    built = build_log(sample_specs(3))
    last = len(split_lines(built.data)[-1])
    # Either far longer than a chunk, or just short enough that the chunk holds it whole
    # and only a piece of the record before it.
    length = 20_000 if junk == "beyond-the-chunk" else 8191 - last // 2
    path = tmp_path / LOG_NAME
    path.write_bytes(built.data + b"x" * length + b"\n")
    with pytest.raises(LogDamagedError) as error:
        FileLog(path).tail()
    assert (4, len(built.data)) == (error.value.seq, error.value.offset)
