"""The record vocabulary of the identity log: kinds, codec, models, errors.

Importing this package is cheap: only the errors, the id rules and the
kind table load with it. The codec (``encode_record``, ``RecordReader``...)
loads on first access and imports ``orjson`` on first use; the pydantic
models (``Genesis``, ``Response``...) load on first access.
"""

from __future__ import annotations

from ._errors import (
    IdentityError,
    IllegalUserIdError,
    LogDamagedError,
    NewerFormatError,
    TransitionError,
)
from ._ids import MAX_ID_LENGTH, check_device_id, check_user_id, user_id_problem
from ._kinds import FORMAT_VERSION, KINDS, RUNTIMES
from ._lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from ._codec import (
        START,
        Checkpoint,
        Record,
        RecordReader,
        encode_record,
    )
    from ._models import (
        AliasDropped,
        AnyRecordModel,
        Clear,
        Consent,
        EnqueueFailure,
        Genesis,
        Heal,
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
    "MAX_ID_LENGTH",
    "RUNTIMES",
    "START",
    "AliasDropped",
    "AnyRecordModel",
    "Checkpoint",
    "Clear",
    "Consent",
    "EnqueueFailure",
    "Genesis",
    "Heal",
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
    "TransitionError",
    "check_device_id",
    "check_user_id",
    "encode_record",
    "parse_record",
    "record_problem",
    "user_id_problem",
    "validate_record",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "._codec": (
            "START",
            "Checkpoint",
            "Record",
            "RecordReader",
            "encode_record",
        ),
        "._models": (
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
            "validate_record",
        ),
    },
)
