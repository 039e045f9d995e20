"""The consent record (log format 4): the writer, the checked and strict reads, the models and
the strict fast path agree on it, and refuse what it may not hold."""

from __future__ import annotations

import io

import orjson
import pytest
from idstitch.events import (
    Consent,
    LogDamagedError,
    NewerFormatError,
    RecordReader,
    parse_record,
    validate_record,
)
from idstitch.events._codec import Checkpoint, check_line, encode_record
from idstitch.events._kinds import CONSENTS
from idstitch.events._shapes import LINE_SHAPES
from idstitch.events._values import record_fault
from support.helpers import build_log, forge_line, sample_specs

AT = "2026-12-07T10:00:00.000000Z"
DEVICE = "3b2a1c0d-9e8f-4a7b-b6c5-d4e3f2a1b0c9"


def _after_two() -> tuple[bytes, Checkpoint, str]:
    """A log of a genesis and an alias, the checkpoint after it and its last record's h."""
    log = build_log(sample_specs(2))
    last = log.records[-1]
    return log.data, Checkpoint(last["seq"], last["h"], len(log.data)), last["h"]


@pytest.mark.parametrize("choice", CONSENTS)
def test_a_consent_line_is_read_alike_by_every_reader(choice: str) -> None:
    """Written with v 4 and its fields in order; the checked read, the strict read (through its
    full-line pattern), the models and the light checks all take it as written."""
    data, after, _ = _after_two()
    fields = {"device_id": DEVICE, "telemetry": choice, "pid": 42}
    line, written = encode_record(after, at=AT, kind="consent", fields=fields)
    checked = list(RecordReader(lambda: io.BytesIO(data + line)))[-1]
    strict = list(RecordReader(lambda: io.BytesIO(data + line), strict=True))[-1]
    model = parse_record(line)
    expected_keys = ["v", "seq", "at", "kind", "device_id", "telemetry", "pid", "h"]
    assert (expected_keys, 4) == (list(orjson.loads(line)), written["v"])
    assert written == checked == strict == orjson.loads(line)
    assert isinstance(model, Consent)
    assert choice == model.telemetry
    assert (True, None) == (LINE_SHAPES["consent"](line) is not None, record_fault(written))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("telemetry", "off"),
        ("telemetry", "ENABLED"),
        ("telemetry", ""),
        ("telemetry", None),
        ("telemetry", 1),
        ("device_id", ""),
        ("pid", -3),
    ],
)
def test_a_consent_with_a_bad_value_is_refused_by_the_writer_and_the_strict_read(
    field: str, value: object
) -> None:
    """A choice other than enabled/disabled (or a bad device, pid) is refused by the models, and
    a line that holds one is damage to the strict read (bad-field), as the light checks say."""
    data, _, last_h = _after_two()
    fields: dict[str, object] = {"device_id": DEVICE, "telemetry": "disabled", "pid": 42}
    fields[field] = value
    with pytest.raises(ValueError, match=f"^refusing to write an invalid record: {field}"):
        validate_record({"v": 4, "seq": 3, "at": AT, "kind": "consent", **fields, "h": "0" * 32})
    line = forge_line({"v": 4, "seq": 3, "at": AT, "kind": "consent", **fields}, last_h)
    with pytest.raises(LogDamagedError) as caught:
        list(RecordReader(lambda: io.BytesIO(data + line), strict=True))
    record = orjson.loads(line)
    assert ("bad-field", 3) == (caught.value.cause, caught.value.seq)
    assert record_fault(record) is not None
    assert LINE_SHAPES["consent"](line) is None


@pytest.mark.parametrize(("v", "cause"), [(3, "bad-field"), (1, "bad-field"), (5, "newer-version")])
def test_a_consent_claiming_another_version_is_damage_or_newer(v: int, cause: str) -> None:
    """consent exists from format 4 on: a v 3 or v 1 one is damage; a v 5 one is a newer
    build's (L8), never damage."""
    _, after, last_h = _after_two()
    fields = {"device_id": DEVICE, "telemetry": "enabled", "pid": 1}
    line = forge_line({"v": v, "seq": 3, "at": AT, "kind": "consent", **fields}, last_h)
    with pytest.raises(LogDamagedError) as caught:
        check_line(line, after)
    assert (cause, cause == "newer-version") == (
        caught.value.cause,
        isinstance(caught.value, NewerFormatError),
    )
