"""The standard library's spelling of a line is orjson's, byte for byte, and so is its reading.

The hash chain runs over a line's bytes, so the writer the embedding path
uses (:mod:`idstitch.events._canonical`, no ``orjson``) must write exactly
what ``orjson.dumps`` wrote before it, and read exactly what ``orjson.loads``
reads. A log it writes reads back through the strict (pydantic) reader and
passes ``idstitch verify``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idstitch.events import START, Checkpoint, RecordReader, encode_record, record_problem
from idstitch.events._canonical import INT_RANGE, canonical_line, dumps
from idstitch.events._codec import body_hash
from idstitch.events._kinds import KIND_FIELDS, KIND_VERSION
from idstitch.machine import IdentityStitch, replay
from idstitch.service import NullSink
from idstitch.store import FileLog, MemoryLog
from support.audit import in_process
from support.helpers import AT, VALID_FIELDS
from support.strategies import (
    RecordSpec,
    checkpoints,
    examples,
    fields_for,
    life_steps,
    record_sequences,
    record_times,
)

#: Any text JSON can hold: control characters, escapes, quotes, non-BMP (no lone surrogates).
texts = st.text(st.characters(codec="utf-8"), max_size=24)  # utf-8: no lone surrogates
#: Integers across the range a line holds and its edges.
integers = st.one_of(
    st.integers(INT_RANGE[0], INT_RANGE[1]),
    st.sampled_from([INT_RANGE[0], INT_RANGE[1], 2**63 - 1, 2**63, -1, 0]),
)
scalars = st.one_of(st.none(), st.booleans(), integers, texts)
#: Values of a record's fields and of a snapshot (which nests a list and dicts).
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3)
)


def orjson_line(after: Checkpoint, at: str, kind: str, fields: Mapping[str, object]) -> bytes:
    """The line the writer wrote before this change: ``orjson.dumps`` and the hash link."""
    record = {"v": KIND_VERSION[kind], "seq": after.seq + 1, "at": at, "kind": kind, **fields}
    body = orjson.dumps(record)
    h = body_hash(after.h, body)
    return body[:-1] + b',"h":"' + h.encode() + b'"}\n'


@st.composite
def any_fields(draw: st.DrawFn, kind: str) -> dict[str, object]:
    """A ``kind`` record's fields, each a valid value or any value a line can hold."""
    valid = draw(fields_for(kind))
    return {name: draw(st.one_of(st.just(valid[name]), scalars)) for name, _ in KIND_FIELDS[kind]}


@settings(max_examples=examples(400), deadline=None)
@given(value=values)
def test_dumps_writes_the_bytes_orjson_writes(value: object) -> None:
    """Text of any kind (escapes, control characters, non-BMP), integers to 64 bits, booleans,
    null, lists and objects: the same bytes as ``orjson.dumps``."""
    assert orjson.dumps(value) == dumps(value)


@pytest.mark.slow
@settings(max_examples=examples(300), deadline=None)
@given(
    kind=st.sampled_from(sorted(KIND_FIELDS)),
    after=checkpoints(),
    at=record_times(),
    data=st.data(),
)
def test_every_kind_of_record_is_written_as_orjson_wrote_it(
    kind: str, after: Checkpoint, at: str, data: st.DataObject
) -> None:
    """encode_record's line (hash link included) is the line the orjson writer wrote."""
    fields = data.draw(any_fields(kind), label="fields")
    line, record = encode_record(after, at=at, kind=kind, fields=fields)
    assert (orjson_line(after, at, kind, fields), record) == (line, orjson.loads(line))


@pytest.mark.parametrize(
    "value",
    [
        INT_RANGE[1] + 1,
        INT_RANGE[0] - 1,
        10**30,
        "lone \ud800",
        {"k": "\udfff"},
        {1: "key"},
        [0, 2**64],
        ("x", [{"k": {1: "key"}}]),
    ],
    ids=[
        "2**64",
        "-2**63-1",
        "10**30",
        "high-surrogate",
        "low-surrogate",
        "int-key",
        "in-a-list",
        "deep-in-a-tuple",
    ],
)
def test_what_orjson_refuses_is_refused(value: object) -> None:
    """Integers beyond 64 bits, lone surrogates, keys that are not strings, at the top or inside
    lists and tuples: both refuse."""
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(value)
    with pytest.raises(ValueError, match=r"."):
        dumps(value)


@pytest.mark.parametrize("kind", sorted(KIND_FIELDS))
def test_a_float_is_refused_where_the_models_refuse_it_anyway(kind: str) -> None:
    """No field holds a float: orjson would spell one, the models refuse it, dumps refuses it."""
    name = KIND_FIELDS[kind][-1][0]
    fields = {**VALID_FIELDS[kind], name: 1.5}
    body = orjson.dumps({"v": KIND_VERSION[kind], "seq": 1, "at": AT, "kind": kind, **fields})
    record = {**orjson.loads(body), "h": "0" * 32}
    assert record_problem(record) is not None
    with pytest.raises(ValueError, match=r"a float is not written"):
        encode_record(START, at=AT, kind=kind, fields=fields)


# --- reading ---------------------------------------------------------------------------

#: Edits that keep a line JSON but make it another spelling than orjson's (or not JSON).
EDITS = [
    (b'"seq":', b'"seq" :'),  # whitespace
    (b'"v":1,', b'"v":1.0,'),  # a number with a fraction
    (b'"v":1,', b'"v":1e0,'),  # an exponent
    (b'"kind"', b'"\\u006bind"'),  # an escape orjson does not write
    (b'"v":1,', b'"v":1,"v":1,'),  # a key twice
    (b'"v":1,', b'"v":18446744073709551616,'),  # beyond 64 bits (orjson reads a float)
    (b'"v":1,', b'"v":NaN,'),  # not JSON
    (b'{"v"', b'\xef\xbb\xbf{"v"'),  # a byte order mark
    (b'"at":"', b'"at":"\\ud800'),  # a lone surrogate, escaped
    (b'"at":"', b'"at":"\xed\xa0\x80'),  # a lone surrogate, as UTF-8 bytes
    (b'"at":"', b'"at":"\xff'),  # not UTF-8
    (b'"}\n', b'"} \n'),  # trailing whitespace
    (b'"}\n', b'"}\r\n'),  # a carriage return
    (b"{", b"["),  # not an object
]


@pytest.mark.parametrize("edit", EDITS, ids=[repr(new) for _, new in EDITS])
def test_canonical_line_declines_every_other_spelling(edit: tuple[bytes, bytes]) -> None:
    """The line as written reads as orjson reads it; each edit keeps it JSON (or not) but makes
    it another spelling than orjson's, and the line is declined."""
    written, _ = encode_record(START, at=AT, kind="response", fields=VALID_FIELDS["response"])
    edited = written.replace(*edit, 1)
    assert edited != written
    assert (orjson.loads(written), None) == (canonical_line(written), canonical_line(edited))


def orjson_reads(line: bytes) -> object:
    """What orjson makes of ``line``: its value, or the error it raises."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return "refused"


@pytest.mark.slow
@settings(max_examples=examples(300), deadline=None)
@given(
    kind=st.sampled_from(sorted(KIND_FIELDS)),
    at=record_times(),
    edit=st.one_of(st.none(), st.sampled_from(EDITS)),
    data=st.data(),
)
def test_canonical_line_takes_only_orjsons_spelling_and_reads_it_as_orjson_does(
    kind: str, at: str, edit: tuple[bytes, bytes] | None, data: st.DataObject
) -> None:
    """A line as the writer spells it reads as orjson reads it; any other spelling is declined."""
    fields = data.draw(any_fields(kind), label="fields")
    written, _ = encode_record(START, at=at, kind=kind, fields=fields)
    line = written if edit is None else written.replace(*edit, 1)
    expected = orjson.loads(line) if line == written else None
    assert expected == canonical_line(line)
    assert canonical_line(line) in (None, orjson_reads(line))


# --- a log written by the standard library, read by the strict reader and verify ----------


@settings(max_examples=examples(60), deadline=None)
@given(specs=record_sequences(max_size=6), light=st.booleans())
def test_a_log_the_stdlib_writes_reads_back_strictly(
    tmp_path_factory: pytest.TempPathFactory, specs: list[RecordSpec], light: bool
) -> None:
    """Records appended by FileLog and MemoryLog (no orjson) read back through the strict
    (pydantic) reader, chain intact, as the same records and bytes the orjson writer makes."""
    path = tmp_path_factory.mktemp("stdlib") / "identity.jsonl"
    on_disk, in_memory = FileLog(path, light=light), MemoryLog(light=light)
    expected, after = b"", START
    appended = []
    for kind, fields, at in specs:
        appended.append(on_disk.append(kind, fields, at=at))
        in_memory.append(kind, fields, at=at)
        expected += orjson_line(after, at, kind, fields)
        after = Checkpoint(appended[-1]["seq"], appended[-1]["h"], len(expected))
    strict = RecordReader(lambda: io.BytesIO(expected), strict=True)
    assert (expected, expected, appended, None) == (
        path.read_bytes(),
        in_memory.getvalue(),
        list(strict),
        strict.error,
    )
    assert appended == list(in_memory.records(strict=True))


@settings(max_examples=examples(25), deadline=None)
@given(steps=life_steps(max_size=10))
def test_a_log_the_service_writes_passes_verify(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str | None, str]]
) -> None:
    """A life driven through the service (its light writer) replays and passes verify --strict."""
    state_dir = tmp_path_factory.mktemp("life")
    stitch = IdentityStitch.open(
        state_dir=state_dir, runtime="persistent", env={}, sink=NullSink(queued=True, sends=True)
    )
    for event, user, _ in steps:
        if event == "response" and user is not None:
            stitch.observe_authenticated_response(user)
        elif event == "login" and user is not None:
            stitch.login(user)
        elif event == "logout":
            stitch.logout()
        elif event == "clear":
            stitch.clear_distinct_id()
    log = FileLog(state_dir / "identity.jsonl")
    result = replay(log.records(strict=True))
    verified = in_process("verify", "--strict", str(state_dir))
    assert (None, stitch.identity, 0, "") == (
        result.error,
        result.identity,
        verified.code,
        verified.stderr,
    )
