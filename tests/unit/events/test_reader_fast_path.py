"""The checked reader's fast comparisons never change a verdict: it agrees with the complete check.

The reference reads line by line through ``check_line`` (the complete,
ordered check and nothing else, parsing with ``orjson``); the reader under
test takes its fast path on sound lines. Both must yield the same records,
stop at the same damage and end at the same checkpoint, whatever was done
to the bytes. The reader is tried three ways: checked (``orjson``), light
(the standard library, as the embedding service reads) and strict.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idstitch.events import (
    START,
    LogDamagedError,
    RecordReader,
    encode_record,
)
from idstitch.events._codec import body_hash
from support.reader_oracles import complete_read as reference
from support.reader_oracles import fast_read as reader
from support.strategies import examples

from bench._data import GENESIS_DEVICE, write_log

#: The first record of the healed variant of the generated log (seq 1, in place of its genesis).
HEAL = {
    "device_id": GENESIS_DEVICE,
    "user_id": "user-h",
    "linked_user": "user-h",
    "kept": "identity.jsonl.damaged-1",
    "pid": 4240,
}


#: The ways the reader reads: with orjson, with the standard library only, strictly.
READS = ["checked", "light", "strict"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Fifteen valid records covering every kind the generator writes."""
    path = tmp_path_factory.mktemp("fast") / "log.jsonl"
    write_log(path, 15)
    return path.read_bytes()


@pytest.fixture(scope="module")
def healed(generated: bytes) -> bytes:
    """The same log opened by a heal (a version-2 record) in place of its genesis."""
    heal, _ = encode_record(START, at="2026-11-27T00:00:00.001000Z", kind="heal", fields=HEAL)
    return rechain(heal + generated[generated.index(b"\n") + 1 :])


@pytest.fixture(scope="module", params=["genesis", "heal"])
def log(request: pytest.FixtureRequest) -> bytes:
    """The generated log, opened by a genesis or by a heal."""
    opened: bytes = request.getfixturevalue("generated" if request.param == "genesis" else "healed")
    return opened


@pytest.mark.parametrize("read", READS)
def test_a_sound_log_reads_the_same(log: bytes, read: str) -> None:
    """On a log with no damage, both read every record and end at the same place."""
    strict, light = read == "strict", read == "light"
    assert reference(log, strict=strict) == reader(log, strict=strict, light=light)
    assert 15 == len(reader(log, strict=strict, light=light)[0])


@settings(max_examples=examples(400), deadline=None)
@given(data=st.data())
def test_any_byte_changed_reads_the_same(log: bytes, data: st.DataObject) -> None:
    """A byte replaced, removed or inserted anywhere: the same records, damage and checkpoint."""
    at = data.draw(st.integers(0, len(log) - 1), label="at")
    byte = data.draw(st.sampled_from(list(b' "\\,:{}[]\n0159afnt-_.eE\x00\xff')), label="byte")
    how = data.draw(st.sampled_from(["replace", "remove", "insert"]), label="how")
    if how == "replace":
        damaged = log[:at] + bytes([byte]) + log[at + 1 :]
    elif how == "remove":
        damaged = log[:at] + log[at + 1 :]
    else:
        damaged = log[:at] + bytes([byte]) + log[at:]
    if data.draw(st.booleans(), label="rechain"):
        damaged = rechain(damaged)
    read = data.draw(st.sampled_from(READS), label="read")
    strict, light = read == "strict", read == "light"
    assert reference(damaged, strict=strict) == reader(damaged, strict=strict, light=light)


@pytest.mark.parametrize(
    "swap",
    [
        (b'"user_id":', b'"runtime":'),  # two keys of one length, exchanged
        (b'"alias":false', b'"alias":0'),  # a bool that is an int
        (b'"pid":4242', b'"pid":4242.0'),  # an int that is a float
        (b'"v":1', b'"v":true'),  # a version that is a bool
        (b'"runtime":"persistent"', b'"pid":4242'),  # two fields exchanged, values and all
    ],
)
@pytest.mark.parametrize("read", READS)
def test_a_reordered_or_retyped_field_is_refused_as_before(
    log: bytes, swap: tuple[bytes, bytes], read: str
) -> None:
    """Shapes the fast comparisons exist for are refused with the complete check's words."""
    old, new = swap
    exchanged = old in (b'"user_id":', b'"runtime":"persistent"')  # two keys, or two pairs
    damaged = _exchange(log, old, new) if exchanged else log.replace(old, new, 1)
    damaged = rechain(damaged)
    strict = read == "strict"
    expected = reference(damaged, strict=strict)
    assert damaged != log
    assert "bad-field" == (expected[1] or ("none",))[0]
    assert expected == reader(damaged, strict=strict, light=read == "light")


@pytest.mark.parametrize("twice", [b'"pid":4242,"pid":4242', b'"pid":7,"pid":4242'])
def test_a_key_written_twice_stops_the_strict_read_only(log: bytes, twice: bytes) -> None:
    """Parsers keep one of a repeated key: strict refuses the line, checked sees the last value."""
    damaged = rechain(log.replace(b'"pid":4242', twice, 1))
    expected = reference(damaged, strict=True)
    assert ("bad-field", 2) == (expected[1] or ("none", 0))[:2]
    assert "'pid' appears more than once" in str(reader_error(damaged))
    assert expected == reader(damaged, strict=True)
    for light in (False, True):
        records, damage, _ = reader(damaged, light=light)
        assert (None, 15) == (damage, len(records))


@pytest.mark.parametrize(
    ("edit", "compact"),
    [
        ((b'"pid":4242', b'"pid": 4242'), False),  # a space after a colon
        ((b',"alias"', b', "alias"'), False),  # a space after a comma
        ((b'"runtime":"persistent"', b'"runtime":"p\\u0065rsistent"'), True),  # an escape
        # An escape ends where its string goes on: a space after that string still counts.
        ((b'"runtime":"persistent","pid"', b'"runtime":"p\\u0065rsistent", "pid"'), False),
        # An escaped quote does not end its string: the space after the string is outside it.
        ((b'"user-0000000","runtime"', b'"us\\":er-0", "runtime"'), False),
    ],
    ids=["after-colon", "after-comma", "escape", "after-an-escaped-string", "after-a-quote"],
)
def test_the_strict_read_takes_only_compact_lines(
    log: bytes, edit: tuple[bytes, bytes], compact: bool
) -> None:
    """A line is compact JSON (log-format.md): strict refuses whitespace between tokens only."""
    damaged = rechain(log.replace(*edit, 1))
    assert damaged != log
    expected = None if compact else "whitespace between tokens: a line is compact"
    error = reader_error(damaged)
    assert expected == (None if error is None else error.detail)
    for light in (False, True):  # light: a line it cannot take as canonical goes to orjson
        records, damage, _ = reader(damaged, light=light)
        assert (None, 15, reader(damaged)[0]) == (damage, len(records), records)


@pytest.mark.parametrize("read", READS)
def test_a_heal_claiming_version_1_is_refused_as_before(healed: bytes, read: str) -> None:
    """A heal is a version-2 kind: the same line claiming v 1 is a bad field, on every path."""
    damaged = rechain(healed.replace(b'{"v":2,', b'{"v":1,', 1))
    strict = read == "strict"
    expected = reference(damaged, strict=strict)
    assert ("bad-field", 1, 0) == expected[1]
    assert expected == reader(damaged, strict=strict, light=read == "light")


@pytest.mark.parametrize("read", READS)
def test_a_version_2_line_of_a_first_release_kind_is_read_off_the_fast_path(
    healed: bytes, read: str
) -> None:
    """A v 2 response (its kind is written with v 1) leaves the fast path and is read as it is."""
    damaged = rechain(healed.replace(b'{"v":1,"seq":2,', b'{"v":2,"seq":2,', 1))
    strict, light = read == "strict", read == "light"
    records, damage, _ = reader(damaged, strict=strict, light=light)
    assert (None, 15, 2) == (damage, len(records), records[1]["v"])
    assert reference(damaged, strict=strict) == reader(damaged, strict=strict, light=light)


@pytest.mark.parametrize("read", READS)
def test_a_line_linked_over_the_fast_paths_slice_is_refused_as_before(
    log: bytes, read: str
) -> None:
    """A space before a line end moves the "h" field off its place: a link forged over the bytes
    the fast path hashes (all but the last 41) does not make the line sound."""
    first, second, rest = log.split(b"\n", 2)
    body = second[: second.rindex(b',"h":"')]
    h = body_hash(first[-34:-2].decode("ascii"), body + b",}")
    damaged = b"\n".join([first, body + b',"h":"' + h.encode("ascii") + b'"} ', rest])
    strict = read == "strict"
    expected = reference(damaged, strict=strict)
    assert ("bad-json", 2) == (expected[1] or ("none", 0))[:2]
    assert expected == reader(damaged, strict=strict, light=read == "light")


def reader_error(data: bytes) -> LogDamagedError | None:
    """The damage the strict reader stops at, if any."""
    try:
        list(RecordReader(lambda: io.BytesIO(data), strict=True))
    except LogDamagedError as exc:
        return exc
    return None


@pytest.mark.parametrize("read", READS)
def test_a_string_holding_the_key_separator_is_read_like_any_other(log: bytes, read: str) -> None:
    """An id holding '":' leaves the fast path (one separator too many) and is still read."""
    damaged = rechain(log.replace(b'"user-0000000"', b'"us\\":er-0"', 1))
    assert damaged != log
    strict, light = read == "strict", read == "light"
    records, damage, _ = reader(damaged, strict=strict, light=light)
    assert (None, 'us":er-0') == (damage, records[1]["user_id"])
    assert reference(damaged, strict=strict) == reader(damaged, strict=strict, light=light)


@pytest.mark.parametrize(
    "swap",
    [
        (b'"user_id":"user-0000000"', b'"user_id":"null"'),  # a placeholder user id (R13)
        (b'"runtime":"persistent"', b'"runtime":"cloud"'),  # no such runtime
        (b'"pid":4242', b'"pid":-1'),  # a negative pid
        (b"T00:00:00.002000Z", b"T00:00:00.002Z"),  # a time without microseconds
        (b'"device_id":"7d7f', b'"device_id":"\\u0007d7f'),  # a control character in an id
        (b'"alias":true', b'"alias":1'),  # a bool that is an int: now the models' objection
    ],
)
def test_a_record_the_models_refuse_stops_the_strict_read_only(
    log: bytes, swap: tuple[bytes, bytes]
) -> None:
    """Values only the models check: the strict read stops there, the checked one reads on."""
    old, new = swap
    damaged = rechain(log.replace(old, new, 1))
    assert damaged != log
    expected = reference(damaged, strict=True)
    assert "bad-field" == (expected[1] or ("none",))[0]
    assert expected == reader(damaged, strict=True)
    retyped = old.startswith(b'"alias"')
    for light in (False, True):
        assert (expected[1] if retyped else None) == reader(damaged, light=light)[1]


def rechain(data: bytes) -> bytes:
    """``data`` with every hash link recomputed, so that only the other damage remains."""
    prev, out = START.h, []
    for line in io.BytesIO(data):
        if line.endswith(b'"}\n') and line[-41:-35] == b',"h":"':
            prev = body_hash(prev, line[:-41] + b"}")
            out.append(line[:-35] + prev.encode() + b'"}\n')
        else:
            out.append(line)
    return b"".join(out)


def _exchange(log: bytes, first: bytes, second: bytes) -> bytes:
    """Exchange two runs of bytes (key names, or whole pairs) on the first line holding both."""
    lines = log.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if first in line and second in line:
            lines[i] = line.replace(first, b"\0").replace(second, first).replace(b"\0", second)
            break
    return b"".join(lines)
