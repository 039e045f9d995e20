"""Hypothesis properties of the two readers on any bytes (the fuzz targets check the same)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from support.helpers import build_log
from support.reader_oracles import check_log_bytes, check_snapshot_bytes
from support.reliability import count
from support.strategies import RecordSpec, examples, record_sequences

EXAMPLES = count("reader_examples", 200)


@st.composite
def mutated_logs(draw: st.DrawFn) -> bytes:
    """A valid log of 1-6 records, then 0-3 edits: a byte set, a cut, an insertion, a lost end,
    a lost final line end."""
    specs: list[RecordSpec] = draw(record_sequences(min_size=1, max_size=6))
    data = bytearray(build_log(specs).data)
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.sampled_from(["set", "cut", "insert", "truncate", "unend"]))
        at = draw(st.integers(0, len(data)))
        if edit == "unend":
            del data[len(data.rstrip(b"\n")) :]
        elif edit == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == "cut":
            del data[at : at + draw(st.integers(1, 40))]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=40) | st.just(b"\n"))
        else:
            del data[at:]
    return bytes(data)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(data=st.binary(max_size=600) | mutated_logs())
def test_the_log_reader_holds_its_properties_on_any_bytes(data: bytes) -> None:
    """200 examples: random bytes and valid logs with up to 3 random edits (reader_oracles)."""
    check_log_bytes(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@st.composite
def snapshot_bytes(draw: st.DrawFn) -> bytes:
    """Snapshot-like JSON (marker or not, any version, any fields) as text, maybe damaged."""
    body = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
    if draw(st.booleans()):
        body["format"] = "idstitch-snapshot"
        body["version"] = draw(st.integers(-2, 3) | json_values)
    data = bytearray(json.dumps(body, ensure_ascii=draw(st.booleans())).encode())
    if draw(st.booleans()) and data:
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(data=st.binary(max_size=300) | snapshot_bytes())
def test_the_snapshot_reader_holds_its_properties_on_any_bytes(data: bytes) -> None:
    """200 examples: random bytes and snapshot-shaped JSON, some with one byte changed."""
    with tempfile.TemporaryDirectory() as folder:
        check_snapshot_bytes(data, str(Path(folder) / "telemetry.json"))
