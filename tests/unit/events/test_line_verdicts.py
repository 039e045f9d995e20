"""What the codec makes of one line: the record, or the damage named with its cause and detail.

Lines a writer of this format never writes, each with a correct hash link
(so that only the damage under test remains): bytes after the ``"h"``
field, a version written as a float, a last line with no line end (a whole
record, a cut-off write, or foreign bytes). Then the reader's defaults, its
start and the damage it keeps, and the small parts of the codec's surface:
a checkpoint crossing a process boundary, ``parse_line``.
"""

from __future__ import annotations

import copy
import io
import pickle

import orjson
import pytest
from idstitch.events import START, Checkpoint, LogDamagedError, RecordReader, encode_record
from idstitch.events._codec import body_hash, check_line, parse_line
from idstitch.events._kinds import ZERO_HASH
from support.helpers import (
    AT,
    VALID_FIELDS,
    ReadOutcome,
    build_log,
    checkpoint_after,
    drain,
    forge_line,
    read_all,
    sample_specs,
)


def damage(line: bytes, after: Checkpoint = START) -> tuple[int, int, str, str]:
    """The damage ``check_line`` names for ``line``: its seq, offset, cause and detail."""
    with pytest.raises(LogDamagedError) as caught:
        check_line(line, after)
    error = caught.value
    return (error.seq, error.offset, error.cause, error.detail)


def relinked(body: bytes, tail: bytes) -> bytes:
    """``body`` (a record up to its last value, no closing brace) with a correct ``"h"`` field
    for the first record, and ``tail`` written after it."""
    h = body_hash(ZERO_HASH, body + b"}")
    return body + b',"h":"' + h.encode("ascii") + b'"' + tail


def clear_body() -> bytes:
    """The bytes of a first ``clear`` record before its ``"h"`` field."""
    line, _ = encode_record(START, at=AT, kind="clear", fields=VALID_FIELDS["clear"])
    return line[: line.rindex(b',"h":"')]


# --- the hash field ends the line --------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "tail"),
    [(b"", b',"x":1}\n'), (b"[", b"}]\n")],
    ids=["a-key-after-it", "a-record-in-an-array"],
)
def test_a_line_going_on_after_its_hash_field_is_bad_json_even_when_the_link_holds(
    head: bytes, tail: bytes
) -> None:
    """The "h" field ends the line's one object: a line going on after it (another key, the end
    of an array holding the record) is refused before it is parsed, however well it is linked."""
    line = relinked(head + clear_body(), tail)
    assert (1, 0, "bad-json", 'the line does not end with its "h" field') == damage(line)


def test_a_line_of_only_a_hash_field_is_refused_as_the_json_it_is_not() -> None:
    """A line holding just a well-linked "h" field ends as a line should: it is refused by the
    parser, with the parser's own words."""
    line = relinked(b"", b"}\n")
    with pytest.raises(orjson.JSONDecodeError) as parsing:
        orjson.loads(line)
    assert (1, 0, "bad-json", str(parsing.value)) == damage(line)


# --- the version --------------------------------------------------------------------------


def test_a_version_written_as_a_float_is_a_bad_field_naming_its_value() -> None:
    """v 4.0 equals 4 but is no integer: the line is refused, its detail naming the value."""
    record = {"v": 4.0, "seq": 1, "at": AT, "kind": "clear", **VALID_FIELDS["clear"]}
    line = forge_line(record, ZERO_HASH)
    assert (1, 0, "bad-field", "v is 4.0, expected an integer") == damage(line)


# --- a last line with no line end ------------------------------------------------------


def unended(tail: bytes) -> tuple[int, int, str, str] | None:
    """The damage a reader names for a log of one record and then ``tail``, with no line end."""
    log = build_log(sample_specs(1))
    outcome = read_all(log.data + tail)
    assert log.records == outcome.records
    error = outcome.error
    return None if error is None else (error.seq, error.offset, error.cause, error.detail)


def test_a_whole_last_record_that_lost_only_its_line_end_is_read() -> None:
    """The last record's bytes are all there but its newline: it is yielded, and the reader
    stands where that newline goes (one byte past the end)."""
    log = build_log(sample_specs(2))
    outcome = read_all(log.data[:-1])
    last = log.records[-1]
    assert (log.records, None, Checkpoint(2, last["h"], len(log.data))) == outcome


@pytest.mark.parametrize(
    ("tail", "cause", "why"),
    [
        (b'{"v":1,"seq":2,"at":"x"}', "torn-tail", "cut off"),
        (b'{"v":1,"seq":2,"at":"2026-11-27T17:00:01.000001Z","kind":"resp', "torn-tail", "cut off"),
        (b'{"v":1,"seq":2,"x":1,"h":"0123', "torn-tail", "cut off"),
        (b'{"a":"b"}', "bad-json", "foreign"),
    ],
    ids=["ends-like-a-record", "long-cut", "cut-in-the-hash", "foreign-object"],
)
def test_an_unended_last_line_that_is_no_whole_record_is_torn_or_foreign(
    tail: bytes, cause: str, why: str
) -> None:
    """A last line with no line end that is not a whole record (however it ends, however long)
    is a torn tail when it starts as record 2 starts, and damage when it does not."""
    log = build_log(sample_specs(1))
    details = {
        "cut off": f"{len(tail)} bytes with no line end (a write was cut off)",
        "foreign": f"{len(tail)} bytes with no line end that are not the start of record 2",
    }
    assert (2, len(log.data), cause, details[why]) == unended(tail)


@pytest.mark.parametrize(
    "tail",
    [b"X", b"0000000000000", b" ", b"\r"],
    ids=["a-byte", "many-bytes", "a-space", "a-carriage-return"],
)
def test_a_whole_record_whose_line_end_was_overwritten_is_damage(tail: bytes) -> None:
    """Bytes after a whole "h" field where the newline goes (even JSON's whitespace): not a
    cut-off write, kept as damage."""
    log = build_log(sample_specs(2))
    second = log.data[len(log.lines[0]) : -1]
    detail = 'bytes after the "h" field instead of a line end'
    assert (2, len(log.lines[0]), "bad-json", detail) == unended(second + tail)


def test_bytes_after_a_lone_hash_field_are_damage_as_bytes_after_it() -> None:
    """A last line that starts with a whole "h" field and goes on: bytes after the "h" field."""
    tail = b',"h":"' + b"0" * 32 + b'"}X'
    log = build_log(sample_specs(1))
    detail = 'bytes after the "h" field instead of a line end'
    assert (2, len(log.data), "bad-json", detail) == unended(tail)


# --- the reader ----------------------------------------------------------------------------


def test_a_reader_made_with_no_options_is_the_checked_read() -> None:
    """RecordReader(opener) checks the chain and each record's shape, not its values: a record
    only the models refuse (a placeholder user id) is yielded."""
    record = {"v": 1, "seq": 1, "at": AT, "kind": "response", **VALID_FIELDS["response"]}
    line = forge_line({**record, "user_id": "null"}, ZERO_HASH)
    read = orjson.loads(line)
    expected = ReadOutcome([read], None, Checkpoint(1, read["h"], len(line)))
    assert expected == drain(RecordReader(lambda: io.BytesIO(line)))


def test_a_reader_not_yet_iterated_stands_at_its_start() -> None:
    """Before its first record is read, a reader's checkpoint is where it starts, with no damage."""
    start = Checkpoint(3, "ab" * 16, 99)
    reader = RecordReader(lambda: io.BytesIO(b""), start)
    assert (start, None) == (reader.checkpoint, reader.error)


def test_a_reader_stopped_by_damage_keeps_the_damage_it_raised() -> None:
    """Iteration raises the damage and the reader keeps it (error), standing after the last
    good record."""
    log = build_log(sample_specs(3))
    reader = RecordReader(lambda: io.BytesIO(log.data + b'{"a":"b"}\n'))
    with pytest.raises(LogDamagedError) as caught:
        list(reader)
    end = checkpoint_after(log.lines, log.records, 3)
    assert (caught.value, end) == (reader.error, reader.checkpoint)


def test_a_reader_reads_on_from_a_checkpoint_inside_the_log() -> None:
    """Started at the checkpoint after record 2, a reader yields records 3 and 4 only, and ends
    where the log ends."""
    log = build_log(sample_specs(4))
    since = checkpoint_after(log.lines, log.records, 2)
    expected = ReadOutcome(log.records[2:], None, checkpoint_after(log.lines, log.records, 4))
    assert expected == read_all(log.data, since=since)


# --- a checkpoint, parse_line ------------------------------------------------------------


def test_a_checkpoint_crosses_pickles_and_copies_as_itself() -> None:
    """A checkpoint pickled (to another process) or copied is an equal Checkpoint, its seq, hash
    and offset each where they were."""
    checkpoint = Checkpoint(7, "ab" * 16, 1234)
    restored = pickle.loads(pickle.dumps(checkpoint))  # noqa: S301 - our own bytes, just made
    for other in (restored, copy.copy(checkpoint), copy.deepcopy(checkpoint)):
        assert (Checkpoint, 7, "ab" * 16, 1234) == (type(other), other.seq, other.h, other.offset)


@pytest.mark.parametrize("light", [False, True], ids=["orjson", "light"])
def test_parse_line_reads_a_line_as_orjson_does(light: bool) -> None:
    """A written line, and one respaced (no canonical line), read as orjson reads them."""
    written, _ = encode_record(START, at=AT, kind="clear", fields=VALID_FIELDS["clear"])
    respaced = written.replace(b'"seq":', b'"seq": ', 1)
    expected = [orjson.loads(written), orjson.loads(respaced)]
    assert expected == [parse_line(written, light=light), parse_line(respaced, light=light)]


@pytest.mark.parametrize("light", [False, True], ids=["orjson", "light"])
def test_parse_line_refuses_what_is_not_json(light: bool) -> None:
    """A line that is no JSON raises ValueError, as orjson.loads does."""
    with pytest.raises(ValueError, match=r"."):
        parse_line(b'{"v":1,\n', light=light)
