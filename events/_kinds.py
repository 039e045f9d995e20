"""The record kinds of log format 1, as plain data.

This module is the one place the line layout is declared: the checked
reader, the writer and the pydantic models (whose field order a test
compares with this table) all follow it. It imports nothing, so the
start-up path can use it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "ENVELOPE_HEAD",
    "FORMAT_VERSION",
    "KINDS",
    "KIND_FIELDS",
    "RUNTIMES",
    "ZERO_HASH",
    "line_keys",
]

#: The record format version this build writes and reads.
FORMAT_VERSION: Final = 1

#: The hash link of the record before the first one.
ZERO_HASH: Final = "0" * 32

#: Keys every line starts with, in order; ``h`` always ends the line.
ENVELOPE_HEAD: Final = ("v", "seq", "at", "kind")

#: The values ``runtime`` may take.
RUNTIMES: Final = ("persistent", "ephemeral")

_STR = (str,)
_OPT_STR = (str, type(None))
_BOOL = (bool,)
_INT = (int,)

#: kind -> ((field, exact types allowed), ...) in line order, after ``kind``.
KIND_FIELDS: Final[dict[str, tuple[tuple[str, tuple[type, ...]], ...]]] = {
    "genesis": (("device_id", _STR), ("runtime", _STR)),
    "import": (("device_id", _STR), ("user_id", _OPT_STR), ("aliased", _BOOL)),
    "response": (
        ("device_id", _STR),
        ("user_id", _STR),
        ("runtime", _STR),
        ("pid", _INT),
        ("alias", _BOOL),
    ),
    "login": (
        ("device_id", _STR),
        ("user_id", _STR),
        ("runtime", _STR),
        ("pid", _INT),
        ("alias", _BOOL),
    ),
    "enqueue_failure": (("device_id", _STR), ("user_id", _STR), ("pid", _INT)),
    "clear": (("device_id", _STR), ("pid", _INT)),
    "logout": (("device_id", _STR), ("new_device_id", _STR), ("pid", _INT)),
}

#: Every record kind, in the order the format lists them.
KINDS: Final = tuple(KIND_FIELDS)


def line_keys(kind: str) -> tuple[str, ...]:
    """All keys of a ``kind`` line, in the order they must appear."""
    return (*ENVELOPE_HEAD, *(name for name, _ in KIND_FIELDS[kind]), "h")
