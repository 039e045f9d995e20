"""One frozen pydantic model per record kind, and the union over them.

These models are the strict view of a record: they check every value
(formats, legal user ids, known runtimes). They are imported only where a
record is written or strictly read, never on the start-up path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import SchemaValidator, core_schema

from ._ids import MAX_ID_LENGTH, check_device_id, check_user_id
from ._kinds import CONSENTS, FORMAT_VERSION, KIND_VERSION, MAX_REASON_LENGTH, RUNTIMES

__all__ = [
    "MODELS",
    "AliasDropped",
    "AnyRecordModel",
    "Clear",
    "Consent",
    "EnqueueFailure",
    "Genesis",
    "Heal",
    "Import",
    "Login",
    "Logout",
    "RecordModel",
    "Response",
    "parse_record",
    "record_problem",
    "validate_python",
    "validate_record",
]

# ASCII digits only: pydantic's regex engine lets ``\d`` match any Unicode digit.
_AT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"

# The id rules run in Python (``_ids.py``), one call out of compiled code per id,
# a quarter of a record's validation. Each id type is therefore a union tried
# left to right: first a pattern that only ids the rules certainly accept can
# match, checked in compiled code; anything else gets the rules themselves.
#
# A device id matches when it is printable ASCII with a character that is not a
# space. A user id matches when it is printable ASCII, has no space at either
# end, does not start with a quote, is at least two characters long and holds a
# digit: then it is not blank, not quoted, and no placeholder (the only one with
# a digit is "0").
_PLAIN_DEVICE_ID = r"^[ -~]*[!-~][ -~]*$"
_PLAIN_USER_ID = r"^(?:[0-9][ -~]*[!-~]|[!#-&(-~][ -~]*[0-9](?:[ -~]*[!-~])?)$"

DeviceId = Annotated[
    Annotated[str, Field(pattern=_PLAIN_DEVICE_ID, max_length=MAX_ID_LENGTH)]
    | Annotated[str, AfterValidator(check_device_id)],
    Field(union_mode="left_to_right"),
]
UserId = Annotated[
    Annotated[str, Field(pattern=_PLAIN_USER_ID, max_length=MAX_ID_LENGTH)]
    | Annotated[str, AfterValidator(check_user_id)],
    Field(union_mode="left_to_right"),
]
RuntimeName = Literal["persistent", "ephemeral"]  # a type needs the literal: checked below
ConsentName = Literal["enabled", "disabled"]  # likewise
Pid = Annotated[int, Field(ge=0)]


def _exact_int(value: object) -> object:
    # A ``Literal[1]`` alone accepts ``True`` and ``1.0`` even in strict mode.
    if type(value) is not int:
        raise ValueError(f"must be an integer, not {type(value).__name__}")
    return value


def _file_name(value: str) -> str:
    if not value or "/" in value or "\0" in value or value in {".", ".."}:
        raise ValueError("must be the name of a file in the state dir: not empty, no '/' or NUL")
    return value


#: The name of a file beside the log (no directory part).
FileName = Annotated[str, AfterValidator(_file_name)]

#: The longest ``reason`` an ``alias_dropped`` record holds, in characters.

#: Why an alias was dropped, in a few words (``refused: HTTP 400``, ``expired``): one line
#: with no control character (C0, DEL, C1) and something besides spaces.
Reason = Annotated[
    str,
    Field(
        max_length=MAX_REASON_LENGTH,
        pattern=r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
    ),
]


class RecordModel(BaseModel):
    """Fields every record has. ``h`` is declared by each kind so it stays last.

    ``v`` is any version from the one the kind was introduced in (1 for the
    kinds declared here; a later kind narrows it) to :data:`FORMAT_VERSION`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: Annotated[Literal[1, 2, 3, 4], BeforeValidator(_exact_int)]
    seq: Annotated[int, Field(ge=1)]
    at: Annotated[str, Field(pattern=_AT_PATTERN)]


Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class Genesis(RecordModel):
    """The log was created; mints the first device id."""

    kind: Literal["genesis"]
    device_id: DeviceId
    runtime: RuntimeName
    h: Hash


class Import(RecordModel):
    """A state file of another format was taken over."""

    kind: Literal["import"]
    device_id: DeviceId
    user_id: UserId | None
    aliased: bool
    h: Hash


class Response(RecordModel):
    """An authenticated response changed the identity."""

    kind: Literal["response"]
    device_id: DeviceId
    user_id: UserId
    runtime: RuntimeName
    pid: Pid
    alias: bool
    h: Hash


class Login(RecordModel):
    """The login command changed the identity."""

    kind: Literal["login"]
    device_id: DeviceId
    user_id: UserId
    runtime: RuntimeName
    pid: Pid
    alias: bool
    h: Hash


class EnqueueFailure(RecordModel):
    """The alias just recorded could not be handed to the sink."""

    kind: Literal["enqueue_failure"]
    device_id: DeviceId
    user_id: UserId
    pid: Pid
    h: Hash


class Clear(RecordModel):
    """Transient failure: user forgotten, device kept."""

    kind: Literal["clear"]
    device_id: DeviceId
    pid: Pid
    h: Hash


class Logout(RecordModel):
    """Logout: user forgotten, device rotated."""

    kind: Literal["logout"]
    device_id: DeviceId
    new_device_id: DeviceId
    pid: Pid
    h: Hash


class Heal(RecordModel):
    """A damaged log was kept aside; this new log starts from the identity it could trust."""

    v: Annotated[Literal[2, 3, 4], BeforeValidator(_exact_int)]
    kind: Literal["heal"]
    device_id: DeviceId
    user_id: UserId | None
    linked_user: UserId | None
    kept: FileName
    pid: Pid
    h: Hash


class AliasDropped(RecordModel):
    """The delivery layer finally dropped an alias this log made: the device is not aliased."""

    v: Annotated[Literal[3, 4], BeforeValidator(_exact_int)]
    kind: Literal["alias_dropped"]
    device_id: DeviceId
    user_id: UserId
    reason: Reason
    pid: Pid
    h: Hash


class Consent(RecordModel):
    """The user's choice about telemetry: ``enabled`` or ``disabled``. Changes no identity."""

    v: Annotated[Literal[4], BeforeValidator(_exact_int)]
    kind: Literal["consent"]
    device_id: DeviceId
    telemetry: ConsentName
    pid: Pid
    h: Hash


AnyRecordModel = Annotated[
    Genesis
    | Import
    | Response
    | Login
    | EnqueueFailure
    | Clear
    | Logout
    | Heal
    | AliasDropped
    | Consent,
    Field(discriminator="kind"),
]

_ADAPTER: TypeAdapter[AnyRecordModel] = TypeAdapter(AnyRecordModel)

#: Each kind's model, by its ``kind`` tag, in the union's order (the format's).
MODELS: dict[str, type[RecordModel]] = {
    get_args(model.model_fields["kind"].annotation)[0]: model
    for model in get_args(get_args(AnyRecordModel)[0])
}


def _fields_of(model: type[RecordModel]) -> core_schema.TypedDictSchema:
    """``model``'s own compiled field schemas, validating a dict without building an instance."""
    schema = model.__pydantic_core_schema__
    if schema["type"] != "model" or schema["schema"]["type"] != "model-fields":
        raise AssertionError(f"unexpected core schema for {model.__name__}: {schema['type']}")
    fields = {
        name: core_schema.typed_dict_field(field["schema"], required=True)
        for name, field in schema["schema"]["fields"].items()
    }
    return core_schema.typed_dict_schema(
        fields, extra_behavior="forbid", strict=True, config=schema.get("config")
    )


_DICT_VALIDATOR = SchemaValidator(
    core_schema.tagged_union_schema(
        {kind: _fields_of(model) for kind, model in MODELS.items()}, discriminator="kind"
    ),
    core_schema.CoreConfig(strict=True),
)

#: Validate a record dict with the models' own field schemas, in compiled code
#: only: no model instance is built and no Python wrapper runs (together a fifth
#: of the cost of ``parse_record``). Returns the dict, raises ``ValidationError``
#: (a ``ValueError``) exactly when :func:`parse_record` would.
validate_python: Callable[[dict[str, Any]], dict[str, Any]] = _DICT_VALIDATOR.validate_python

# The runtimes are declared once (``_kinds.Runtime``); the type spells them out for mypy.
assert get_args(RuntimeName) == RUNTIMES, "RuntimeName names the runtimes of _kinds.Runtime"
assert get_args(ConsentName) == CONSENTS, "ConsentName names the choices of _kinds.CONSENTS"

# Each model's ``v`` takes every version its kind is read in, and no other.
assert {kind: get_args(model.model_fields["v"].annotation) for kind, model in MODELS.items()} == {
    kind: tuple(range(KIND_VERSION[kind], FORMAT_VERSION + 1)) for kind in MODELS
}, "the models describe format 4"


def parse_record(data: dict[str, Any] | bytes) -> AnyRecordModel:
    """The model of a record dict or JSON line; raises pydantic's ValidationError."""
    if isinstance(data, bytes):
        return _ADAPTER.validate_json(data)
    return _ADAPTER.validate_python(data)


def record_problem(data: dict[str, Any]) -> str | None:
    """A one-line description of why ``data`` is not a valid record, or ``None``."""
    try:
        validate_python(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        field = errors[0]["loc"][1:2]
        # An id refused by both members of its union: the rules' words (the last
        # error at that field) say why, not the fast pattern's.
        first = [e for e in errors if e["loc"][1:2] == field][-1] if field else errors[0]
        return f"{field[0] if field else 'record'}: {first['msg']}"
    return None


def validate_record(data: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first bad field of ``data``."""
    problem = record_problem(data)
    if problem is not None:
        raise ValueError(f"refusing to write an invalid record: {problem}")
