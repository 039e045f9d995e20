"""The record vocabulary of the identity log: kinds, codec, models, errors.

Importing this package is cheap: the pydantic models (``Genesis``,
``Response``, ...) load on first access, and ``orjson``/``hashlib`` on the
first record encoded or read.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._codec import (
    START,
    UPCASTERS,
    Checkpoint,
    Record,
    RecordReader,
    body_hash,
    check_line,
    encode_record,
    format_time,
    upcast,
)
from ._errors import IdentityError, IllegalUserIdError, LogDamagedError, NewerFormatError
from ._ids import MAX_ID_LENGTH, check_device_id, check_user_id, user_id_problem
from ._kinds import FORMAT_VERSION, KIND_FIELDS, KINDS, RUNTIMES, ZERO_HASH, line_keys

if TYPE_CHECKING:
    from ._models import (
        AnyRecordModel,
        Clear,
        EnqueueFailure,
        Genesis,
        Import,
        Login,
        Logout,
        RecordModel,
        Response,
        parse_record,
        record_problem,
        validate_record,
    )

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "KIND_FIELDS",
    "MAX_ID_LENGTH",
    "RUNTIMES",
    "START",
    "UPCASTERS",
    "ZERO_HASH",
    "AnyRecordModel",
    "Checkpoint",
    "Clear",
    "EnqueueFailure",
    "Genesis",
    "IdentityError",
    "IllegalUserIdError",
    "Import",
    "LogDamagedError",
    "Login",
    "Logout",
    "NewerFormatError",
    "Record",
    "RecordModel",
    "RecordReader",
    "Response",
    "body_hash",
    "check_device_id",
    "check_line",
    "check_user_id",
    "encode_record",
    "format_time",
    "line_keys",
    "parse_record",
    "record_problem",
    "upcast",
    "user_id_problem",
    "validate_record",
]

_LAZY = frozenset(
    {
        "AnyRecordModel",
        "Clear",
        "EnqueueFailure",
        "Genesis",
        "Import",
        "Login",
        "Logout",
        "RecordModel",
        "Response",
        "parse_record",
        "record_problem",
        "validate_record",
    }
)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - module attribute hook
    if name in _LAZY:
        return getattr(importlib.import_module("._models", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
