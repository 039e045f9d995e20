"""The writer's check without pydantic refuses exactly the records the pydantic models refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idstitch.events import START, Record, encode_record, record_problem
from idstitch.events._kinds import KIND_FIELDS
from idstitch.events._values import record_fault
from idstitch.store import FileLog, MemoryLog
from support.helpers import AT, VALID_FIELDS
from support.strategies import (
    blank_ids,
    control_char_ids,
    examples,
    fields_for,
    illegal_user_ids,
    kept_names,
    legal_user_ids,
    overlong_ids,
    record_times,
)


class Text(str):
    """A ``str`` subclass: the models' strict mode takes one as a string."""


class Number(int):
    """An ``int`` subclass: the models' strict mode takes one as an integer."""


#: Values a field may be given by mistake, of every type and every way an id can be wrong.
odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.just("persistent"),
    st.just("ephemeral"),
    st.just("2026-11-27T17:00:00.000000Z"),
    st.just("2026-11-27T17:00:00Z"),
    st.just("\uff12026-11-27T17:00:00.000000Z"),  # a full-width digit
    st.just("0123456789abcdef" * 2),
    st.just("0123456789ABCDEF" * 2),
    st.sampled_from([".", "..", "a/b", "a\0b", ""]),
    st.builds(Text, legal_user_ids()),
    st.builds(Number, st.integers(0, 9)),
    legal_user_ids(),
    illegal_user_ids(),
    blank_ids(),
    control_char_ids(),
    overlong_ids(),
    kept_names(),
)


@st.composite
def records(draw: st.DrawFn) -> Record:
    """A record as encode_record builds it, then maybe with one value replaced, a key dropped
    or a key added."""
    kind = draw(st.sampled_from(sorted(KIND_FIELDS)))
    fields = draw(fields_for(kind))
    _, record = encode_record(START, at=draw(record_times()), kind=kind, fields=fields)
    how = draw(st.sampled_from(["keep", "replace", "drop", "add"]))
    name = draw(st.sampled_from(sorted(record)))
    if how == "replace":
        record[name] = draw(odd_values)
    elif how == "drop":
        del record[name]
    elif how == "add":
        record[draw(st.sampled_from(["extra", "user_id", "pid", "alias", "runtime"]))] = 1
    return record


@pytest.mark.slow
@settings(max_examples=examples(1500), deadline=None)
@given(record=records())
def test_record_fault_agrees_with_the_models(record: Record) -> None:
    """Every record the models accept, record_fault accepts; every one they refuse, it refuses."""
    assert (record_problem(record) is None) == (record_fault(record) is None)


#: Values at the edge of each rule, tried in every field of every kind.
EDGES: list[object] = [
    None,
    True,
    0,
    -1,
    1.0,
    Number(3),
    "",
    " ",
    "null",
    "user\n1",
    "x" * 201,
    Text("user-1"),
    "ephemeral",
    "cloud",
    "2026-11-27T17:00:00.000000Z",
    "2026-11-27T17:00:00.000000z",
    "2026-11-27 17:00:00.000000Z",
    "\uff12026-11-27T17:00:00.000000Z",
    "2026-11-27T17:00:00.00000Z",
    "0123456789abcdef" * 2,
    "0123456789ABCDEF" * 2,
    "0123456789abcdeg" * 2,
    ".",
    "..",
    "a/b",
    "a\0b",
    "identity.jsonl.damaged-1",
]


@pytest.mark.parametrize("value", EDGES, ids=repr)
@pytest.mark.parametrize("kind", sorted(KIND_FIELDS))
def test_record_fault_agrees_with_the_models_at_each_edge(kind: str, value: object) -> None:
    """Each edge value, in each field of a kind (the envelope's too): the same verdict."""
    _, valid = encode_record(START, at=AT, kind=kind, fields=VALID_FIELDS[kind])
    for name in valid:
        record = {**valid, name: value}
        assert (name, record_problem(record) is None) == (name, record_fault(record) is None)


@pytest.mark.parametrize("light", [False, True])
def test_the_logs_refuse_what_the_models_refuse(tmp_path: Path, light: bool) -> None:
    """FileLog and MemoryLog refuse an invalid record with the field and why; nothing is written."""
    fields = {"device_id": "d-1", "user_id": "null", "pid": 7}
    message = r"^refusing to write an invalid record: user_id: .*placeholder"
    log = FileLog(tmp_path / "identity.jsonl", light=light)
    log.append("genesis", {"device_id": "d-1", "runtime": "persistent"}, at=AT)
    before = log.path.read_bytes()
    memory = MemoryLog(light=light)
    with pytest.raises(ValueError, match=message):
        log.append("enqueue_failure", fields, at=AT)
    with pytest.raises(ValueError, match=message):
        memory.append("enqueue_failure", fields, at=AT)
    assert (before, b"") == (log.path.read_bytes(), memory.getvalue())
