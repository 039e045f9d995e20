"""The record vocabulary: codec round trips, models, user ids (R13), the hash chain, versions."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import idstitch.events
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idstitch.events import (
    FORMAT_VERSION,
    KINDS,
    START,
    AliasDropped,
    Checkpoint,
    Clear,
    Heal,
    IdentityError,
    IllegalUserIdError,
    LogDamagedError,
    NewerFormatError,
    Record,
    RecordModel,
    Response,
    _codec,
    check_device_id,
    check_user_id,
    encode_record,
    parse_record,
    record_problem,
    user_id_problem,
    validate_record,
)
from idstitch.events._codec import UPCASTERS, body_hash, check_line, format_time, now_text, upcast
from idstitch.events._kinds import KIND_FIELDS, KIND_VERSION, ZERO_HASH, line_keys
from idstitch.events._models import MODELS
from idstitch.events._models import validate_python as validate_dict
from pydantic import ValidationError
from support.helpers import (
    AT,
    VALID_FIELDS,
    BuiltLog,
    build_log,
    checkpoint_after,
    first_untrusted,
    forge_line,
    read_all,
    sample_specs,
    split_lines,
)
from support.strategies import (
    ILLEGAL_ANY_CASE,
    ILLEGAL_EXACT,
    KIND_STRATEGIES,
    RecordSpec,
    checkpoints,
    control_char_ids,
    examples,
    fields_for,
    illegal_user_ids,
    legal_user_ids,
    record_sequences,
    record_specs,
    record_times,
    spec_says_illegal,
)

#: The chain properties draw whole logs of long ids; fewer examples keep them quick.
_CHAIN = settings(max_examples=examples(50))


#: A valid set of fields per kind, for tests that break one value at a time.
def valid_record(kind: str) -> Record:
    """A valid first record of ``kind``."""
    return encode_record(START, at=AT, kind=kind, fields=VALID_FIELDS[kind])[1]


# --- the vocabulary -----------------------------------------------------------


def test_kinds_are_the_formats_kinds_in_order() -> None:
    """The codec knows exactly the ten kinds of log format 4, in the spec's order."""
    expected = (
        "genesis",
        "import",
        "response",
        "login",
        "enqueue_failure",
        "clear",
        "logout",
        "heal",
        "alias_dropped",
        "consent",
    )
    assert expected == KINDS
    assert set(expected) == set(MODELS) == set(KIND_STRATEGIES) == set(VALID_FIELDS)


def test_each_kind_is_written_with_the_version_it_was_introduced_in() -> None:
    """heal (added in format 2) is written with v 2, alias_dropped (format 3) with v 3, consent
    (format 4) with v 4, the first release's kinds with v 1."""
    expected = dict.fromkeys(KINDS, 1) | {"heal": 2, "alias_dropped": 3, "consent": 4}
    assert (4, expected) == (FORMAT_VERSION, KIND_VERSION)
    assert expected == {kind: valid_record(kind)["v"] for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_each_model_takes_every_version_its_kind_is_read_in(kind: str) -> None:
    """A model's v accepts the versions from its kind's own to the newest, and no other."""
    versions = range(FORMAT_VERSION + 2)
    accepted = [v for v in versions if record_problem({**valid_record(kind), "v": v}) is None]
    assert list(range(KIND_VERSION[kind], FORMAT_VERSION + 1)) == accepted


@pytest.mark.parametrize("kind", KINDS)
def test_model_field_order_is_the_line_key_order(kind: str) -> None:
    """Each model declares its fields in KIND_FIELDS' order, so models and codec cannot drift."""
    expected = ("v", "seq", "at", "kind", *(name for name, _ in KIND_FIELDS[kind]), "h")
    assert expected == tuple(MODELS[kind].model_fields)
    assert expected == line_keys(kind)
    assert list(expected[4:-1]) == list(VALID_FIELDS[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_models_are_frozen_strict_and_closed(kind: str) -> None:
    """Every model is frozen, strict and forbids extra keys."""
    config = MODELS[kind].model_config
    expected = {"frozen": True, "extra": "forbid", "strict": True}
    assert expected == {key: config.get(key) for key in expected}
    model = MODELS[kind].model_validate(valid_record(kind))
    with pytest.raises(ValidationError):
        model.seq = 2  # type: ignore[misc]


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_every_kind_round_trips(kind: str, data: st.DataObject) -> None:
    """fields -> encode_record -> line -> check_line/RecordReader -> model -> dump is lossless."""
    fields = data.draw(fields_for(kind), label="fields")
    at = data.draw(record_times(), label="at")
    after = data.draw(checkpoints(), label="after")
    assert [name for name, _ in KIND_FIELDS[kind]] == list(fields)

    line, record = encode_record(after, at=at, kind=kind, fields=fields)

    v = KIND_VERSION[kind]
    expected = {"v": v, "seq": after.seq + 1, "at": at, "kind": kind, **fields, "h": record["h"]}
    assert expected == record
    assert list(line_keys(kind)) == list(record)
    validate_record(record)
    assert record == check_line(line, after)
    outcome = read_all(line, strict=True, since=Checkpoint(after.seq, after.h, 0))
    assert ([record], None, Checkpoint(after.seq + 1, record["h"], len(line))) == outcome
    model = parse_record(record)
    assert MODELS[kind] is type(model)
    assert record == model.model_dump()
    assert list(record) == list(model.model_dump())
    assert model == parse_record(line)


@given(spec=record_specs())
def test_line_is_compact_json_with_keys_in_format_order(spec: RecordSpec) -> None:
    """A line is one compact UTF-8 JSON object, keys in line_keys(kind) order, then a newline."""
    line, record = encode_record(START, at=spec.at, kind=spec.kind, fields=spec.fields)
    assert line_keys(spec.kind) == tuple(json.loads(line))
    compact = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert compact + b"\n" == line


@_CHAIN
@given(specs=record_sequences(min_size=1, max_size=6))
def test_a_sequence_reads_back_with_chained_hashes(specs: list[RecordSpec]) -> None:
    """Records written in turn read back identically, seq 1..n, each h linked to the last."""
    log = build_log(specs)
    assert list(range(1, len(specs) + 1)) == [r["seq"] for r in log.records]
    expected = (log.records, None, checkpoint_after(log.lines, log.records, len(specs)))
    assert expected == read_all(log.data, strict=True)
    prev = ZERO_HASH
    for line, record in zip(log.lines, log.records, strict=True):
        body = line[: line.rindex(b',"h":"')] + b"}"
        assert body_hash(prev, body) == record["h"]
        prev = record["h"]


def test_a_known_line_has_its_known_hash() -> None:
    """The hash link is blake2b-128 of the previous h and the line without its h field."""
    line, record = encode_record(START, at=AT, kind="genesis", fields=VALID_FIELDS["genesis"])
    body = b'{"v":1,"seq":1,"at":"2026-11-27T17:00:00.000000Z","kind":"genesis",'
    body += b'"device_id":"d-1","runtime":"persistent"}'
    h = hashlib.blake2b(b"0" * 32 + body, digest_size=16).hexdigest()
    assert (body[:-1] + f',"h":"{h}"}}\n'.encode(), h) == (line, record["h"])


# --- values the models refuse ---------------------------------------------------

_MISSING = object()

BAD_VALUES: list[tuple[str, str, object, str]] = [
    # (kind, key, bad value or _MISSING, the location the error names)
    ("response", "user_id", "null", "user_id"),
    ("response", "user_id", "Anonymous", "user_id"),
    ("login", "user_id", "", "user_id"),
    ("enqueue_failure", "user_id", 42, "user_id"),
    ("import", "user_id", '"guest"', "user_id"),
    ("genesis", "runtime", "sometimes", "runtime"),
    ("response", "runtime", "Persistent", "runtime"),
    ("response", "pid", -1, "pid"),
    ("clear", "pid", True, "pid"),
    ("clear", "pid", "7", "pid"),
    ("response", "alias", 1, "alias"),
    ("import", "aliased", "yes", "aliased"),
    ("genesis", "device_id", "", "device_id"),
    ("genesis", "device_id", "a\nb", "device_id"),
    ("logout", "new_device_id", "x" * 201, "new_device_id"),
    ("logout", "new_device_id", None, "new_device_id"),
    ("clear", "at", "2026-11-27 17:00:00.000000Z", "at"),
    ("clear", "at", "2026-11-27T17:00:00Z", "at"),
    ("clear", "at", "2026-11-27T17:00:00.000000+00:00", "at"),
    ("clear", "at", "\u0662\u0660\u0662\u0666-11-27T17:00:00.000000Z", "at"),
    ("clear", "seq", 0, "seq"),
    ("clear", "seq", 1.0, "seq"),
    ("clear", "v", 5, "v"),
    ("clear", "v", 0, "v"),
    ("heal", "v", 1, "v"),
    ("heal", "linked_user", "null", "linked_user"),
    ("heal", "linked_user", "", "linked_user"),
    ("heal", "user_id", "undefined", "user_id"),
    ("heal", "device_id", "a\x00b", "device_id"),
    ("heal", "kept", "", "kept"),
    ("heal", "kept", "state/identity.jsonl.damaged-1", "kept"),
    ("heal", "kept", "identity.jsonl\x00", "kept"),
    ("heal", "kept", "..", "kept"),
    ("heal", "kept", None, "kept"),
    ("heal", "linked_user", _MISSING, "linked_user"),
    ("heal", "v", 5, "v"),
    ("alias_dropped", "v", 2, "v"),
    ("consent", "v", 3, "v"),
    ("consent", "v", 5, "v"),
    ("consent", "telemetry", "off", "telemetry"),
    ("consent", "telemetry", "Disabled", "telemetry"),
    ("consent", "telemetry", None, "telemetry"),
    ("consent", "telemetry", True, "telemetry"),
    ("consent", "device_id", "", "device_id"),
    ("consent", "pid", -1, "pid"),
    ("alias_dropped", "v", 1, "v"),
    ("alias_dropped", "user_id", "null", "user_id"),
    ("alias_dropped", "user_id", None, "user_id"),
    ("alias_dropped", "device_id", "", "device_id"),
    ("alias_dropped", "reason", "", "reason"),
    ("alias_dropped", "reason", "   ", "reason"),
    ("alias_dropped", "reason", "refused\nHTTP 400", "reason"),
    ("alias_dropped", "reason", "expired\x1b[31m", "reason"),
    ("alias_dropped", "reason", "expired\x85", "reason"),
    ("alias_dropped", "reason", "x" * 201, "reason"),
    ("alias_dropped", "reason", None, "reason"),
    ("alias_dropped", "reason", _MISSING, "reason"),
    ("alias_dropped", "pid", -1, "pid"),
    ("clear", "v", True, "v"),
    ("clear", "v", 1.0, "v"),
    ("clear", "h", "A" * 32, "h"),
    ("clear", "h", "0" * 31, "h"),
    ("clear", "user_id", "u-1", "user_id"),
    ("clear", "device_id", _MISSING, "device_id"),
    ("clear", "kind", "reset", "record"),
]


@pytest.mark.parametrize(("kind", "key", "value", "where"), BAD_VALUES)
def test_validate_record_refuses_bad_values(kind: str, key: str, value: object, where: str) -> None:
    """validate_record refuses each bad value with a ValueError naming the field."""
    record = valid_record(kind)
    validate_record(record)
    if value is _MISSING:
        del record[key]
    else:
        record[key] = value
    with pytest.raises(ValueError, match=r"^refusing to write an invalid record: ") as caught:
        validate_record(record)
    problem = str(caught.value).removeprefix("refusing to write an invalid record: ")
    assert where == problem.split(": ", 1)[0]


SHAPE_ERRORS: list[tuple[str, Mapping[str, object], str]] = [
    ("reset", {"device_id": "d"}, "unknown record kind 'reset'"),
    (
        "clear",
        {"device_id": "d"},
        "a clear record has exactly the fields ['device_id', 'pid'], got ['device_id']",
    ),
    (
        "clear",
        {"device_id": "d", "pid": 1, "user_id": "u"},
        (
            "a clear record has exactly the fields ['device_id', 'pid'], "
            "got ['device_id', 'pid', 'user_id']"
        ),
    ),
    (
        "clear",
        {"device_id": "d", "pid": 2**64},
        "a clear record cannot be written as JSON: Integer exceeds 64-bit range",
    ),
]


@pytest.mark.parametrize(("kind", "fields", "message"), SHAPE_ERRORS)
def test_encode_record_refuses_wrong_shapes(
    kind: str, fields: Mapping[str, object], message: str
) -> None:
    """encode_record refuses unknown kinds, missing or extra fields, values JSON cannot hold."""
    with pytest.raises(ValueError, match=r"record") as caught:
        encode_record(START, at=AT, kind=kind, fields=fields)
    assert message == str(caught.value)


# --- user ids (R13) ------------------------------------------------------------------


@given(user_id=illegal_user_ids())
def test_check_user_id_refuses_every_illegal_id(user_id: str) -> None:
    """R13: every illegal id is refused with IllegalUserIdError (an IdentityError, a ValueError)."""
    with pytest.raises(IllegalUserIdError) as caught:
        check_user_id(user_id)
    error = caught.value
    assert isinstance(error, IdentityError)
    assert isinstance(error, ValueError)
    assert (user_id, user_id_problem(user_id)) == (error.user_id, error.reason)
    assert error.reason is not None
    with pytest.raises(ValidationError):
        Response.model_validate({**valid_record("response"), "user_id": user_id})


@given(user_id=legal_user_ids())
def test_check_user_id_accepts_ordinary_ids(user_id: str) -> None:
    """Ordinary ids (UUIDs, e-mails, printable text up to 200 chars) pass unchanged."""
    assert (user_id, None) == (check_user_id(user_id), user_id_problem(user_id))
    record = {**valid_record("response"), "user_id": user_id}
    assert record == Response.model_validate(record).model_dump()


def _case_variants(word: str) -> list[str]:
    return sorted({word, word.upper(), word.title(), word.swapcase(), word[:1].upper() + word[1:]})


ANY_CASE_VARIANTS = [v for w in ILLEGAL_ANY_CASE for v in _case_variants(w)]
QUOTED_VARIANTS = [
    q
    for w in (*ILLEGAL_ANY_CASE, *(w.upper() for w in ILLEGAL_ANY_CASE), *ILLEGAL_EXACT)
    for q in (f'"{w}"', f"'{w}'", f' "{w}" ', f'" {w} "')
]


@pytest.mark.parametrize("user_id", ANY_CASE_VARIANTS)
def test_case_insensitive_placeholders_are_refused_in_any_case(user_id: str) -> None:
    """R13: anonymous, guest, distinct_id, ... are refused whatever their case."""
    with pytest.raises(IllegalUserIdError):
        check_user_id(user_id)


@pytest.mark.parametrize("user_id", [*ILLEGAL_EXACT, *(f" {w} " for w in ILLEGAL_EXACT)])
def test_case_sensitive_placeholders_are_refused_as_written(user_id: str) -> None:
    """R13: null, none, None, NaN, 0, [object Object] are refused exactly (and padded)."""
    with pytest.raises(IllegalUserIdError):
        check_user_id(user_id)


@pytest.mark.parametrize("user_id", ["NULL", "Null", "NONE", "nan", "NAN", "00", "[Object Object]"])
def test_case_sensitive_list_is_case_sensitive(user_id: str) -> None:
    """R13: other spellings of the case-sensitive words are ordinary ids."""
    assert user_id == check_user_id(user_id)


@pytest.mark.parametrize("user_id", QUOTED_VARIANTS)
def test_quoted_placeholders_are_refused(user_id: str) -> None:
    """R13: a placeholder in single or double quotes, padded or not, is refused."""
    with pytest.raises(IllegalUserIdError):
        check_user_id(user_id)


@given(user_id=control_char_ids())
def test_control_characters_are_refused(user_id: str) -> None:
    """R13: an id holding a C0 or C1 control character is refused, naming the cause."""
    with pytest.raises(IllegalUserIdError) as caught:
        check_user_id(user_id)
    expected = "a user id must not contain control characters"
    assert expected == caught.value.reason


def test_length_limit_is_200_characters() -> None:
    """R13: 200 characters pass, 201 are refused with the count in the message."""
    longest = "a" * 200
    assert longest == check_user_id(longest)
    with pytest.raises(IllegalUserIdError) as caught:
        check_user_id(longest + "a")
    expected = "a user id is at most 200 characters, this one has 201"
    assert expected == caught.value.reason


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [
        (None, "a user id must be a string, not NoneType"),
        (42, "a user id must be a string, not int"),
        (b"user", "a user id must be a string, not bytes"),
        ("", "a user id must not be blank"),
        (" \t ", "a user id must not be blank"),
        ("\u00a0\u3000", "a user id must not be blank"),
        ('""', "a user id must not be blank (this one is a quoted blank)"),
        ("' '", "a user id must not be blank (this one is a quoted blank)"),
        ("u\udc80", "a user id must be valid Unicode text (it holds a lone surrogate)"),
        ("null", "PostHog treats this id as a placeholder and refuses to merge under it"),
    ],
)
def test_refusals_name_their_reason(user_id: object, reason: str) -> None:
    """Non-strings, blanks, lone surrogates and placeholders are refused, saying why."""
    with pytest.raises(IllegalUserIdError) as caught:
        check_user_id(user_id)
    assert (user_id, reason) == (caught.value.user_id, caught.value.reason)


def test_illegal_user_id_message_names_the_id_rule_and_fix() -> None:
    """The error message shows the id, the reason, rule R13 and what to pass instead."""
    with pytest.raises(IllegalUserIdError) as caught:
        check_user_id("anonymous")
    expected = (
        "illegal user id 'anonymous': PostHog treats this id as a placeholder and refuses "
        "to merge under it (rule R13); pass the authenticated user's stable id "
        "(for example their UUID)"
    )
    assert expected == str(caught.value)


@pytest.mark.parametrize(
    ("device_id", "message"),
    [
        ("", "a device id must not be blank"),
        ("d\x00", "a device id must not contain control characters"),
        ("d" * 201, "a device id is at most 200 characters, this one has 201"),
        (7, "a device id must be a string, not int"),
    ],
)
def test_check_device_id_refuses_unusable_ids(device_id: object, message: str) -> None:
    """Device ids must be non-blank printable strings of at most 200 characters."""
    with pytest.raises(ValueError, match=r"device id") as caught:
        check_device_id(device_id)
    assert message == str(caught.value)


def _rule_says_unusable(value: object) -> bool:
    """R13's conditions on any id, stated plainly: the oracle for the fast path."""
    if not isinstance(value, str):
        return True
    return (
        not value.strip()
        or len(value) > 200
        or any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in value)
    )


#: Mostly ASCII, so that ids take the fast path, with the characters that must leave it.
_near_ascii = st.one_of(
    st.text(st.characters(max_codepoint=0x7F), max_size=8),
    st.text(st.sampled_from("aZ0 -_'\"\t\x00\x1f\x7f\x85\u00a0\u00e9\ud800"), max_size=8),
    st.builds(
        lambda pad, word, quote: quote + pad + word + pad + quote,
        st.text(" \t", max_size=2),
        st.sampled_from([*ILLEGAL_ANY_CASE, *ILLEGAL_EXACT, "Null", "NONE", "nan", "user-1"]),
        st.sampled_from(["", "'", '"']),
    ),
    st.text(st.sampled_from("ab "), min_size=195, max_size=205),
    st.text(st.sampled_from("0 1'\"a\t"), max_size=5),
    st.none(),
    st.integers(),
)


@settings(max_examples=examples(500))
@given(_near_ascii)
def test_id_checks_agree_with_the_rule_on_both_paths(value: object) -> None:
    """The fast path for plain ASCII ids decides exactly as the rule does, for both kinds of id."""
    unusable = _rule_says_unusable(value)
    illegal_user = unusable or spec_says_illegal(value)  # type: ignore[arg-type]  # a str here
    assert (user_id_problem(value) is not None) == illegal_user
    try:
        accepted = check_user_id(value) == value
    except IllegalUserIdError:
        accepted = False
    assert accepted == (not illegal_user)
    try:
        device_accepted = check_device_id(value) == value
    except ValueError:
        device_accepted = False
    assert device_accepted == (not unusable)


@settings(max_examples=examples(500))
@given(_near_ascii)
def test_the_models_take_ids_exactly_as_the_rules_do(value: object) -> None:
    """The models' compiled shortcut for plain ids never accepts an id the rules refuse."""
    as_user = {**valid_record("response"), "user_id": value}
    as_device = {**valid_record("response"), "device_id": value}
    assert (record_problem(as_user) is None) == (user_id_problem(value) is None)
    assert (record_problem(as_device) is None) == (not _rule_says_unusable(value))


#: Integers a log line can hold: orjson writes 64-bit integers only (and reads
#: wider ones as floats, which the readers refuse as wrong types).
_line_integers = st.integers(-(2**63), 2**64 - 1)

#: Values of every JSON type, some of them close to valid ones.
_any_json_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5000),
    _line_integers,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "null", "persistent", "cloud", "2026-11-27T17:00:00Z", "0" * 32]),
    st.text(max_size=12),
    st.lists(_line_integers, max_size=2),
    st.dictionaries(st.text(max_size=3), _line_integers, max_size=2),
)


@pytest.mark.slow
@settings(max_examples=examples(400))
@given(spec=record_specs(), data=st.data())
def test_the_dict_validator_agrees_with_the_models(spec: RecordSpec, data: st.DataObject) -> None:
    """The strict reader's validator refuses exactly what the models refuse, with their words."""
    _, record = encode_record(START, at=spec.at, kind=spec.kind, fields=spec.fields)
    how = data.draw(st.sampled_from(["keep", "set", "drop", "add"]), label="how")
    key = data.draw(st.sampled_from(sorted(record)), label="key")
    if how == "set":
        record[key] = data.draw(_any_json_value, label="value")
    elif how == "drop":
        del record[key]
    elif how == "add":
        record[data.draw(st.sampled_from(["extra", "aliased", "pid"]), label="added")] = 1
    try:
        parse_record(record)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        expected: tuple[object, ...] | None = (first["loc"], first["msg"])
    else:
        expected = None
    try:
        validated = validate_dict(record)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        assert expected == (first["loc"], first["msg"])
    else:
        assert (None, record) == (expected, validated)


# --- the hash chain --------------------------------------------------------------


def _assert_detected_at_first_untrusted(original: bytes, damaged: bytes) -> LogDamagedError:
    """Reading ``damaged`` yields every record before the first changed line, then stops there."""
    lines = split_lines(original)
    built = read_all(original)
    assert built.error is None
    index = first_untrusted(lines, split_lines(damaged))
    at = checkpoint_after(lines, built.records, index)
    outcome = read_all(damaged)
    assert isinstance(outcome.error, LogDamagedError)
    assert type(outcome.error) is LogDamagedError
    expected = (built.records[:index], at, index + 1, at.offset)
    assert expected == (
        outcome.records,
        outcome.checkpoint,
        outcome.error.seq,
        outcome.error.offset,
    )
    return outcome.error


@_CHAIN
@given(specs=record_sequences(min_size=1, max_size=5), data=st.data())
def test_any_single_byte_change_is_detected_at_its_record(
    specs: list[RecordSpec], data: st.DataObject
) -> None:
    """Changing any one byte stops reading at the record holding it, after every record before."""
    original = build_log(specs).data
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]), label="byte")
    damaged = original[:position] + bytes([byte]) + original[position + 1 :]
    error = _assert_detected_at_first_untrusted(original, damaged)
    assert error.cause in {"hash-chain", "bad-json", "torn-tail"}


@_CHAIN
@given(specs=record_sequences(min_size=2, max_size=5), data=st.data())
def test_a_deleted_line_is_detected(specs: list[RecordSpec], data: st.DataObject) -> None:
    """Deleting any line but the last breaks the chain at the record that took its place."""
    lines = build_log(specs).lines
    index = data.draw(st.integers(0, len(lines) - 2), label="deleted")
    damaged = b"".join(lines[:index] + lines[index + 1 :])
    error = _assert_detected_at_first_untrusted(b"".join(lines), damaged)
    assert ("hash-chain", index + 1) == (error.cause, error.seq)


@_CHAIN
@given(specs=record_sequences(min_size=1, max_size=5), data=st.data())
def test_an_inserted_line_is_detected(specs: list[RecordSpec], data: st.DataObject) -> None:
    """A copy of any line inserted anywhere is caught at the first position it does not belong."""
    lines = build_log(specs).lines
    copied = data.draw(st.integers(0, len(lines) - 1), label="copied")
    where = data.draw(st.integers(0, len(lines)), label="where")
    damaged = b"".join([*lines[:where], lines[copied], *lines[where:]])
    error = _assert_detected_at_first_untrusted(b"".join(lines), damaged)
    expected = "hash-chain"
    assert expected == error.cause


@_CHAIN
@given(specs=record_sequences(min_size=2, max_size=5), data=st.data())
def test_two_swapped_lines_are_detected(specs: list[RecordSpec], data: st.DataObject) -> None:
    """Swapping two lines is caught at the earlier of the two."""
    lines = build_log(specs).lines
    first = data.draw(st.integers(0, len(lines) - 2), label="first")
    second = data.draw(st.integers(first + 1, len(lines) - 1), label="second")
    swapped = list(lines)
    swapped[first], swapped[second] = swapped[second], swapped[first]
    error = _assert_detected_at_first_untrusted(b"".join(lines), b"".join(swapped))
    assert ("hash-chain", first + 1) == (error.cause, error.seq)


def test_a_deleted_last_line_is_not_detectable_by_the_chain_alone() -> None:
    """The known limit: without its last line a log reads as a valid shorter log."""
    log = build_log(sample_specs(4))
    expected = (log.records[:-1], None, checkpoint_after(log.lines, log.records, 3))
    assert expected == read_all(b"".join(log.lines[:-1]))


def test_a_checkpoint_with_the_wrong_hash_is_refused() -> None:
    """Resuming from a checkpoint whose h is not the record's breaks the chain at the next seq."""
    log = build_log(sample_specs(3))
    good = checkpoint_after(log.lines, log.records, 1)
    wrong = Checkpoint(good.seq, "f" * 32, good.offset)
    outcome = read_all(log.data, since=wrong)
    assert outcome.error is not None
    no_records: list[Record] = []
    expected = (no_records, wrong, 2, good.offset, "hash-chain")
    actual = (outcome.records, outcome.checkpoint, outcome.error.seq, outcome.error.offset)
    assert expected == (*actual, outcome.error.cause)


def test_strict_reading_refuses_what_the_checked_reader_lets_through() -> None:
    """A well-chained line with an illegal user id passes the checked read, not the strict one."""
    record = {k: v for k, v in valid_record("response").items() if k != "h"}
    line = forge_line({**record, "user_id": "null"}, ZERO_HASH)
    checked = read_all(line)
    expected_checked = ("null", None)
    assert expected_checked == (checked.records[0]["user_id"], checked.error)
    strict = read_all(line, strict=True)
    assert strict.error is not None
    no_records: list[Record] = []
    expected = (no_records, START, 1, 0, "bad-field")
    actual = (strict.records, strict.checkpoint, strict.error.seq, strict.error.offset)
    assert expected == (*actual, strict.error.cause)


#: The envelope of a first record, and the keys of a clear record in their order.
_FIRST = {"v": 1, "seq": 1, "at": AT}
_CLEAR_KEYS = ["v", "seq", "at", "kind", "device_id", "pid", "h"]


@pytest.mark.parametrize(
    ("record", "cause", "detail"),
    [
        (
            {**_FIRST, "kind": "reset", "device_id": "d"},
            "unknown-kind",
            f"kind 'reset' is not one of {sorted(KIND_FIELDS)}",
        ),
        (
            {**_FIRST, "kind": "clear", "device_id": "d"},
            "bad-field",
            "clear record: missing ['pid'], unexpected []",
        ),
        (
            {**_FIRST, "kind": "clear", "device_id": "d", "pid": 1, "x": 1},
            "bad-field",
            "clear record: missing [], unexpected ['x']",
        ),
        (
            {**_FIRST, "kind": "clear", "device_id": "d", "x": 1},
            "bad-field",
            "clear record: missing ['pid'], unexpected ['x']",
        ),
        (
            {**_FIRST, "kind": "clear", "pid": 1, "device_id": "d"},
            "bad-field",
            f"clear record: keys out of order, expected {_CLEAR_KEYS}",
        ),
        (
            {**_FIRST, "kind": "clear", "device_id": "d", "pid": "1"},
            "bad-field",
            "pid is str, expected int",
        ),
        (
            {**_FIRST, "seq": 2, "kind": "clear", "device_id": "d", "pid": 1},
            "seq-gap",
            "seq 2 where 1 was expected",
        ),
        (
            {**_FIRST, "v": True, "kind": "clear", "device_id": "d", "pid": 1},
            "bad-field",
            "v is True, expected an integer",
        ),
    ],
    ids=[
        "unknown-kind",
        "missing",
        "extra",
        "missing-and-extra",
        "out-of-order",
        "retyped",
        "seq-gap",
        "bool-version",
    ],
)
def test_well_chained_malformed_records_are_damage(
    record: dict[str, object], cause: str, detail: str
) -> None:
    """A correct hash does not make a record: unknown kinds, keys missing, extra or out of
    order, wrong types, seq gaps; the damage names what is wrong."""
    outcome = read_all(forge_line(record, ZERO_HASH))
    assert outcome.error is not None
    no_records: list[Record] = []
    expected = (no_records, 1, 0, cause, detail)
    error = outcome.error
    assert expected == (outcome.records, error.seq, error.offset, error.cause, error.detail)


# --- versions ---------------------------------------------------------------------


def test_a_newer_version_raises_newer_format_error_naming_it() -> None:
    """L8: a correctly chained v 5 record stops reading with NewerFormatError naming version 5."""
    log = build_log(sample_specs(2))
    newer = {"v": 5, "seq": 3, "at": AT, "kind": "merge", "device_id": "d", "extra": [1]}
    outcome = read_all(log.data + forge_line(newer, log.records[-1]["h"]))
    error = outcome.error
    assert isinstance(error, NewerFormatError)
    assert isinstance(error, LogDamagedError)
    detail = (
        "format version 5 is newer than this build reads (4); upgrade idstitch to read it. "
        "Nothing was rewritten"
    )
    expected = (
        log.records,
        checkpoint_after(log.lines, log.records, 2),
        (3, len(log.data), "newer-version", detail),
        f"record seq 3 at byte {len(log.data)}: newer-version: {detail}",
    )
    actual = (
        outcome.records,
        outcome.checkpoint,
        (error.seq, error.offset, error.cause, error.detail),
        str(error),
    )
    assert expected == actual


def test_a_version_that_never_existed_is_damage() -> None:
    """A record claiming v 0 (below the first version, no upcaster) is a bad field, not newer."""
    line = forge_line({"v": 0, "seq": 1, "at": AT, "kind": "clear", "device_id": "d"}, ZERO_HASH)
    with pytest.raises(LogDamagedError) as caught:
        check_line(line, START)
    expected = ("bad-field", "format version 0 was never a version of this log")
    assert expected == (caught.value.cause, caught.value.detail)


def test_the_upcasters_keep_older_records_as_they_are() -> None:
    """Formats 2, 3 and 4 only added a kind (heal, alias_dropped, consent): the 1 -> 2, 2 -> 3
    and 3 -> 4 steps are the identity, so v 1, v 2 and v 3 records read as written."""
    record, heal = valid_record("response"), valid_record("heal")
    assert ([1, 2, 3], record, heal) == (list(UPCASTERS), upcast(dict(record)), upcast(dict(heal)))
    assert (record, heal) == (UPCASTERS[1](record), UPCASTERS[2](heal))
    assert heal is UPCASTERS[3](heal)
    assert record is UPCASTERS[1](record)


def _heal_line(v: int) -> bytes:
    """A well-chained first record: a heal claiming format version ``v``."""
    fields = {key: value for key, value in valid_record("heal").items() if key != "h"}
    return forge_line({**fields, "v": v}, ZERO_HASH)


def _dropped_line(v: int) -> tuple[BuiltLog, bytes]:
    """A log of a genesis and an alias, and a well-chained alias_dropped claiming version ``v``
    to follow it."""
    log = build_log(sample_specs(2))
    fields = {"v": v, "seq": 3, "at": AT, "kind": "alias_dropped"}
    last = log.records[-1]
    drop = {"device_id": last["device_id"], "user_id": last["user_id"], "reason": "expired"}
    return log, forge_line({**fields, **drop, "pid": 7}, last["h"])


@pytest.mark.parametrize("strict", [False, True], ids=["checked", "strict"])
@pytest.mark.parametrize("v", [1, 2])
def test_an_alias_dropped_claiming_an_older_version_is_damage(strict: bool, v: int) -> None:
    """alias_dropped did not exist before format 3: a v 1 or v 2 one is a bad field (damage)."""
    log, line = _dropped_line(v)
    outcome = read_all(log.data + line, strict=strict)
    assert outcome.error is not None
    detail = (
        f"v is {v}, but alias_dropped records exist from format version 3 on: "
        f"a version-{v} line cannot hold one"
    )
    expected = (log.records, 3, "bad-field", detail, LogDamagedError)
    actual = (outcome.records, outcome.error.seq, outcome.error.cause, outcome.error.detail)
    assert expected == (*actual, type(outcome.error))


def test_a_format_2_reader_reads_an_alias_dropped_as_newer(monkeypatch: pytest.MonkeyPatch) -> None:
    """L8 for an older build: a reader of format 2 (FORMAT_VERSION 2, no alias_dropped kind) stops
    at the drop with NewerFormatError naming version 3, after every record before it, so that
    build leaves the log alone instead of healing it as damage."""
    log, line = _dropped_line(3)
    monkeypatch.setattr(_codec, "FORMAT_VERSION", 2)
    monkeypatch.setattr(_codec, "_BOUND", {})  # readers bound anew, without the kind
    monkeypatch.delitem(_codec._SIGNATURES, "alias_dropped")
    monkeypatch.delitem(_codec._SHAPES, "alias_dropped")
    outcome = read_all(log.data + line)
    error = outcome.error
    detail = (
        "format version 3 is newer than this build reads (2); upgrade idstitch to read it. "
        "Nothing was rewritten"
    )
    expected = (log.records, NewerFormatError, 3, len(log.data), "newer-version", detail)
    assert error is not None
    assert expected == (
        outcome.records,
        type(error),
        error.seq,
        error.offset,
        error.cause,
        error.detail,
    )


@pytest.mark.parametrize("strict", [False, True], ids=["checked", "strict"])
def test_a_heal_claiming_version_1_is_damage(strict: bool) -> None:
    """heal did not exist in format 1: a v 1 heal is a bad field (damage), never read."""
    outcome = read_all(_heal_line(1), strict=strict)
    assert outcome.error is not None
    no_records: list[Record] = []
    detail = (
        "v is 1, but heal records exist from format version 2 on: a version-1 line cannot hold one"
    )
    expected = (no_records, START, "bad-field", detail, LogDamagedError)
    actual = (outcome.records, outcome.checkpoint, outcome.error.cause, outcome.error.detail)
    assert expected == (*actual, type(outcome.error))


@pytest.mark.parametrize("strict", [False, True], ids=["checked", "strict"])
def test_a_version_2_line_of_a_first_release_kind_is_read(strict: bool) -> None:
    """A v 2 clear (a newer writer's) reads as the record it is: v 1 to 2 changed no layout."""
    first = build_log(sample_specs(1))
    genesis = first.records[0]
    fields = {"v": 2, "seq": 2, "at": AT, "kind": "clear", "device_id": genesis["device_id"]}
    line = forge_line({**fields, "pid": 7}, genesis["h"])
    outcome = read_all(first.data + line, strict=strict)
    expected = [*first.records, orjson.loads(line)]
    end = Checkpoint(2, expected[-1]["h"], len(first.data) + len(line))
    assert (expected, None, end) == outcome


#: kind -> (the record it follows, its fields, its line up to its hash, its model): the kinds
#: added after the first release, each written with the version it was added in.
LATER_KINDS: dict[str, tuple[Checkpoint, dict[str, object], bytes, type[RecordModel]]] = {
    "heal": (
        START,
        VALID_FIELDS["heal"] | {"user_id": None, "linked_user": "bob"},
        (
            b'{"v":2,"seq":1,"at":"2026-11-27T17:00:00.000000Z","kind":"heal","device_id":"d-1",'
            b'"user_id":null,"linked_user":"bob","kept":"identity.jsonl.damaged-1","pid":7,"h":"'
        ),
        Heal,
    ),
    "alias_dropped": (
        Checkpoint(2, "a" * 32, 300),
        VALID_FIELDS["alias_dropped"],
        (
            b'{"v":3,"seq":3,"at":"2026-11-27T17:00:00.000000Z","kind":"alias_dropped",'
            b'"device_id":"d-1","user_id":"u-1","reason":"refused: HTTP 400","pid":7,"h":"'
        ),
        AliasDropped,
    ),
}


@pytest.mark.parametrize("strict", [False, True], ids=["checked", "strict"])
@pytest.mark.parametrize("kind", list(LATER_KINDS))
def test_a_later_kind_round_trips_through_every_reader(kind: str, strict: bool) -> None:
    """A heal (v 2) and an alias_dropped (v 3) written by encode_record read back (checked and
    strict) and parse to their models."""
    after, fields, head, model_type = LATER_KINDS[kind]
    line, record = encode_record(after, at=AT, kind=kind, fields=fields)
    assert head + record["h"].encode() + b'"}\n' == line
    since = Checkpoint(after.seq, after.h, 0)
    expected = ([record], None, Checkpoint(after.seq + 1, record["h"], len(line)))
    assert expected == read_all(line, strict=strict, since=since)
    model = parse_record(line)
    assert (model_type, record) == (type(model), model.model_dump())


@pytest.mark.parametrize(
    ("tail", "seq", "cause"),
    [
        (b'{"v":2,"seq":1,"at":"2026-11-27T17', 1, "torn-tail"),  # a heal cut off: it starts a log
        (b'{"v":2,"seq":3,"at":"2026-11-27T17', 3, "bad-json"),  # no v 2 kind is written at seq 3
        (b'{"v":1,"seq":3,"at":"2026-11-27T17', 3, "torn-tail"),
        (b'{"v":3,"seq":3,"at":"2026-11-27T17', 3, "torn-tail"),  # an alias_dropped cut off
        (b'{"v":3,"seq":1,"at":"2026-11-27T17', 1, "bad-json"),  # no v 3 kind starts a log
    ],
)
def test_only_a_write_of_this_build_cut_off_is_a_torn_tail(
    tail: bytes, seq: int, cause: str
) -> None:
    """An unended last line is torn only as the next record starts: v 2 only for a heal at seq 1,
    v 3 only for an alias_dropped after it."""
    log = build_log(sample_specs(seq - 1))
    outcome = read_all(log.data + tail)
    assert outcome.error is not None
    assert (seq, cause) == (outcome.error.seq, outcome.error.cause)


def test_a_version_5_heal_is_newer_not_damage() -> None:
    """A heal claiming v 5 is from a newer build: NewerFormatError, as for any kind."""
    with pytest.raises(NewerFormatError) as caught:
        check_line(_heal_line(5), START)
    assert ("newer-version", 1) == (caught.value.cause, caught.value.seq)


@pytest.mark.parametrize("strict", [False, True], ids=["checked", "strict"])
def test_a_version_3_heal_is_read(strict: bool) -> None:
    """A v 3 heal (a newer writer's) reads as the record it is: v 2 to 3 changed no layout."""
    line = _heal_line(3)
    record = orjson.loads(line)
    assert ([record], None, Checkpoint(1, record["h"], len(line))) == read_all(line, strict=strict)


def test_upcast_applies_an_injected_step() -> None:
    """upcast runs the step for each version below the target, in order."""

    def one_to_two(record: Record) -> Record:
        return {**record, "v": 2, "origin": "upcast from 1"}

    def two_to_three(record: Record) -> Record:
        return {**record, "v": 3, "steps": 2}

    record: Record = {"v": 1, "seq": 1}
    once: Record = {"v": 2, "seq": 1, "origin": "upcast from 1"}
    assert once == upcast(record, steps={1: one_to_two}, target=2)
    twice: Record = {"v": 3, "seq": 1, "origin": "upcast from 1", "steps": 2}
    assert twice == upcast(record, steps={1: one_to_two, 2: two_to_three}, target=3)
    assert record is upcast(record, steps={1: one_to_two}, target=1)


def test_upcast_with_a_missing_step_raises_key_error() -> None:
    """A version with no step to the next one raises KeyError naming that version."""
    with pytest.raises(KeyError) as caught:
        upcast({"v": 1, "seq": 1}, steps={}, target=2)
    expected = (1,)
    assert expected == caught.value.args


def test_the_reader_upcasts_through_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v 0 line is read through UPCASTERS[0]: the reader returns the upgraded record."""

    def zero_to_one(record: Record) -> Record:
        # Version 0 had no pid; the upgraded record keeps format 1's key order.
        head = {key: record[key] for key in ("seq", "at", "kind", "device_id")}
        return {"v": 1, **head, "pid": 0, "h": record["h"]}

    monkeypatch.setitem(UPCASTERS, 0, zero_to_one)
    line = forge_line({"v": 0, "seq": 1, "at": AT, "kind": "clear", "device_id": "d"}, ZERO_HASH)
    h = json.loads(line)["h"]
    expected = {"v": 1, "seq": 1, "at": AT, "kind": "clear", "device_id": "d", "pid": 0, "h": h}
    assert expected == check_line(line, START)


# --- times ------------------------------------------------------------------------


def test_format_time_writes_utc_with_microseconds_and_z() -> None:
    """Times are converted to UTC and written as YYYY-MM-DDTHH:MM:SS.ffffffZ."""
    plus_one, minus_five = timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))
    times = [
        datetime(2026, 11, 27, 17, tzinfo=UTC),
        datetime(2026, 11, 27, 18, 0, 0, 123456, tzinfo=plus_one),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=minus_five),
    ]
    expected = [
        "2026-11-27T17:00:00.000000Z",
        "2026-11-27T17:00:00.123456Z",
        "2027-01-01T04:59:59.999999Z",
    ]
    assert expected == [format_time(t) for t in times]


def test_format_time_refuses_naive_times() -> None:
    """A naive datetime is refused: the log never guesses a zone."""
    with pytest.raises(ValueError, match=r"^record times must be timezone-aware$"):
        format_time(datetime(2026, 11, 27, 17))


@given(at=record_times())
def test_format_time_output_parses_back_and_validates(at: str) -> None:
    """Every formatted time matches the record pattern and parses back to the same instant."""
    parsed = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert at == format_time(parsed)
    record = {**valid_record("clear"), "at": at}
    assert record == Clear.model_validate(record).model_dump()


@pytest.mark.parametrize(
    "micros",
    [0, 951_782_400_000_001, 1_795_798_800_123_456, 253_402_300_799_999_999],
    ids=["epoch", "leap-day", "2026", "year-9999"],
)
def test_now_text_writes_the_clock_as_format_time_does(
    micros: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time the service stamps records with, read without datetime, is format_time's text."""
    monkeypatch.setattr("time.time_ns", lambda: micros * 1000 + 999)
    expected = format_time(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros))
    assert expected == now_text()


def test_now_text_is_now() -> None:
    """now_text() reads the system clock: within a second of datetime's reading of it."""
    before = datetime.now(UTC)
    read = datetime.strptime(now_text(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert timedelta(0) <= read - before.replace(microsecond=0) < timedelta(seconds=2)


# --- import cost ------------------------------------------------------------------


@pytest.mark.processes
def test_importing_events_and_store_loads_neither_pydantic_nor_orjson() -> None:
    """A fresh interpreter importing idstitch.events and .store loads no pydantic or orjson."""
    script = (
        "import json, sys\n"
        "import idstitch.events, idstitch.store\n"
        "heavy = ('pydantic', 'pydantic_core', 'orjson')\n"
        "before = sorted(m for m in heavy if m in sys.modules)\n"
        "idstitch.events.Genesis\n"
        "after = sorted(m for m in ('pydantic',) if m in sys.modules)\n"
        "print(json.dumps([before, after]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    expected = [[], ["pydantic"]]
    assert expected == json.loads(result.stdout)


def test_unknown_attributes_raise_attribute_error() -> None:
    """The lazy attribute hook serves only the package's names; anything else is AttributeError."""
    name = "Nothing"
    with pytest.raises(AttributeError, match=r"has no attribute 'Nothing'"):
        getattr(idstitch.events, name)
