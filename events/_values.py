"""The models' verdict on a record about to be written, with the standard library only.

The pydantic models (:mod:`._models`) are the strict view of a record, and
they cost about 120 ms to import: the writer cannot afford them on a CLI's
start. This module states the same rules in plain Python, field by field
from the table of :mod:`._kinds`, using the very id rules the models call
(:mod:`._ids`): :func:`record_fault` accepts exactly the records
:func:`~idstitch.events.record_problem` accepts (a property test holds the
two to that). The strict reader and ``idstitch verify`` keep the models.
"""

from __future__ import annotations

from ._ids import check_device_id, check_user_id
from ._kinds import (
    CONSENTS,
    ENVELOPE_HEAD,
    FORMAT_VERSION,
    KIND_FIELDS,
    KIND_VERSION,
    MAX_REASON_LENGTH,
    RUNTIMES,
)

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["record_fault"]

_DIGITS = frozenset("0123456789")
#: Where ``at`` holds what, by position: ``2026-11-27T17:00:00.000000Z``.
_AT_SHAPE = "dddd-dd-ddTdd:dd:dd.ddddddZ"
_HEX = frozenset("0123456789abcdef")


def _at(value: object) -> str | None:
    if not isinstance(value, str) or len(value) != len(_AT_SHAPE):
        return "must be a time written as 2026-11-27T17:00:00.000000Z (UTC, microseconds)"
    for char, shape in zip(value, _AT_SHAPE, strict=True):
        if char not in _DIGITS if shape == "d" else char != shape:
            return "must be a time written as 2026-11-27T17:00:00.000000Z (UTC, microseconds)"
    return None


def _id(check: Callable[[object], str]) -> Callable[[object], str | None]:
    def problem(value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be a string, not {type(value).__name__}"
        try:
            check(value)
        except ValueError as exc:  # IllegalUserIdError is one
            return str(getattr(exc, "reason", exc))
        return None

    return problem


def _optional(rule: Callable[[object], str | None]) -> Callable[[object], str | None]:
    return lambda value: None if value is None else rule(value)


def _runtime(value: object) -> str | None:
    return None if isinstance(value, str) and value in RUNTIMES else f"must be one of {RUNTIMES}"


def _consent(value: object) -> str | None:
    return None if isinstance(value, str) and value in CONSENTS else f"must be one of {CONSENTS}"


def _pid(value: object) -> str | None:
    # An int subclass passes, as in the models' strict mode; a bool never does.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return "must be an integer of at least 0"


def _bool(value: object) -> str | None:
    return None if type(value) is bool else "must be true or false"


def _file_name(value: object) -> str | None:
    if not isinstance(value, str) or not value or value in {".", ".."}:
        return "must be the name of a file in the state dir"
    if "/" in value or "\0" in value:
        return "must be the name of a file in the state dir: no '/' or NUL"
    return None


def _control(char: str) -> bool:
    return char <= "\x1f" or "\x7f" <= char <= "\x9f"


def _reason(value: object) -> str | None:
    # The models' pattern: no control character, and one character at least that is not
    # a space either; at most MAX_REASON_LENGTH characters.
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > MAX_REASON_LENGTH:
        return f"must be at most {MAX_REASON_LENGTH} characters"
    if any(_control(char) for char in value) or all(char == " " for char in value):
        return "must be one line of text with no control characters, not blank"
    return None


def _hash(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 32 and _HEX.issuperset(value):
        return None
    return "must be 32 lowercase hex digits"


_DEVICE = _id(check_device_id)
_USER = _id(check_user_id)

#: How each field is checked, by kind: the models' annotations, spelled as functions.
_RULES: dict[str, dict[str, Callable[[object], str | None]]] = {
    "genesis": {"device_id": _DEVICE, "runtime": _runtime},
    "import": {"device_id": _DEVICE, "user_id": _optional(_USER), "aliased": _bool},
    "response": {
        "device_id": _DEVICE,
        "user_id": _USER,
        "runtime": _runtime,
        "pid": _pid,
        "alias": _bool,
    },
    "enqueue_failure": {"device_id": _DEVICE, "user_id": _USER, "pid": _pid},
    "clear": {"device_id": _DEVICE, "pid": _pid},
    "logout": {"device_id": _DEVICE, "new_device_id": _DEVICE, "pid": _pid},
    "heal": {
        "device_id": _DEVICE,
        "user_id": _optional(_USER),
        "linked_user": _optional(_USER),
        "kept": _file_name,
        "pid": _pid,
    },
    "alias_dropped": {"device_id": _DEVICE, "user_id": _USER, "reason": _reason, "pid": _pid},
    "consent": {"device_id": _DEVICE, "telemetry": _consent, "pid": _pid},
}
_RULES["login"] = _RULES["response"]
assert {kind: tuple(rules) for kind, rules in _RULES.items()} == {
    kind: tuple(name for name, _ in fields) for kind, fields in KIND_FIELDS.items()
}, "every field of every kind has its rule"


def record_fault(record: Mapping[str, object]) -> str | None:
    """``field: why`` for the first value the models would refuse in ``record``, else ``None``."""
    kind = record.get("kind")
    rules = _RULES.get(kind) if isinstance(kind, str) else None
    if rules is None:
        return f"kind: must be one of {sorted(_RULES)}"
    expected = {*ENVELOPE_HEAD, *rules, "h"}
    if set(record) != expected:
        missing = sorted(expected - set(record))
        extra = sorted(set(record) - expected)
        return f"record: missing {missing}, unexpected {extra}"
    v, seq = record["v"], record["seq"]
    assert isinstance(kind, str)
    if type(v) is not int or not KIND_VERSION[kind] <= v <= FORMAT_VERSION:
        return f"v: must be an integer from {KIND_VERSION[kind]} to {FORMAT_VERSION}"
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return "seq: must be an integer of at least 1"
    for name, rule in (("at", _at), *rules.items(), ("h", _hash)):
        problem = rule(record[name])
        if problem is not None:
            return f"{name}: {problem}"
    return None
