"""The record kinds of the log format, as plain data.

This module is the one place the line layout is declared: the checked
reader, the writer and the pydantic models (whose field order a test
compares with this table) all follow it. It imports nothing but
:class:`~._names.Names` (no ``enum``), so the start-up path can use it.
"""

from __future__ import annotations

from ._names import Names

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import ClassVar, Final

__all__ = [
    "CONSENTS",
    "ENVELOPE_HEAD",
    "FORMAT_VERSION",
    "KINDS",
    "KIND_FIELDS",
    "KIND_VERSION",
    "MAX_REASON_LENGTH",
    "OPENING_KINDS",
    "RUNTIMES",
    "ZERO_HASH",
    "Runtime",
    "line_keys",
]

#: The newest record format version this build reads. It reads every version
#: from 1 up to this one; a line of a higher ``v`` is from a newer build (L8).
FORMAT_VERSION: Final = 4

#: The hash link of the record before the first one.
ZERO_HASH: Final = "0" * 32

#: Keys every line starts with, in order; ``h`` always ends the line.
ENVELOPE_HEAD: Final = ("v", "seq", "at", "kind")

#: The longest ``reason`` an ``alias_dropped`` record holds, in characters.
MAX_REASON_LENGTH: Final = 200


class Runtime(Names):
    """Where the host CLI runs: ``persistent`` or ``ephemeral`` (plain strings, no ``enum``).

    The one declaration of the runtimes: the records' ``runtime`` field, the
    models' type of it and the service's detection all take them from here.
    """

    PERSISTENT: ClassVar[Runtime]
    EPHEMERAL: ClassVar[Runtime]


#: The values ``runtime`` may take, as plain strings.
RUNTIMES: Final = tuple(runtime.value for runtime in Runtime)

#: The values a ``consent`` record's ``telemetry`` field may take: the user's choice.
CONSENTS: Final = ("enabled", "disabled")

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
    "heal": (
        ("device_id", _STR),
        ("user_id", _OPT_STR),
        ("linked_user", _OPT_STR),
        ("kept", _STR),
        ("pid", _INT),
    ),
    "alias_dropped": (("device_id", _STR), ("user_id", _STR), ("reason", _STR), ("pid", _INT)),
    "consent": (("device_id", _STR), ("telemetry", _STR), ("pid", _INT)),
}

#: kind -> the format version it was introduced in: the ``v`` its lines are written
#: with. A kind added after the first release is written with a higher ``v``, so that
#: an older build reads it as newer (L8) and leaves the log alone instead of healing
#: it as damage. A line claiming a lower ``v`` than its kind's cannot hold that kind:
#: it is damage (``bad-field``). A higher one, up to :data:`FORMAT_VERSION`, is read:
#: a format step that changes no layout leaves the older kinds' lines as they were.
KIND_VERSION: Final[dict[str, int]] = {
    "genesis": 1,
    "import": 1,
    "response": 1,
    "login": 1,
    "enqueue_failure": 1,
    "clear": 1,
    "logout": 1,
    "heal": 2,
    "alias_dropped": 3,
    "consent": 4,
}

#: The kinds that start a log, and only a log: each is always record 1, and no other kind
#: ever is. (The machine's table allows exactly these from the empty log; a test holds the
#: two together.) A cut-off write is told from foreign bytes by the versions these kinds,
#: or the others, are written with (see the codec).
OPENING_KINDS: Final = ("genesis", "import", "heal")

#: Every record kind, in the order the format lists them.
KINDS: Final = tuple(KIND_FIELDS)


def line_keys(kind: str) -> tuple[str, ...]:
    """All keys of a ``kind`` line, in the order they must appear."""
    return (*ENVELOPE_HEAD, *(name for name, _ in KIND_FIELDS[kind]), "h")
