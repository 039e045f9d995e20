"""Where a log line keeps its hash: the byte positions of the line format, written once.

Every record line ends the same way: its hash field's key, 32 lowercase
hex digits, ``"}`` and ``\\n`` (log-format.md, "Lines")::

    {"v":1,"seq":3,...,"h":"0123456789abcdef0123456789abcdef"}\\n
                        ^^^^^^ HASH_KEY    ^^^^^^^^ HASH_SLICE  (the line's last 35..3 bytes)

So a line's hash is a slice, its body (what the hash covers, less the
closing ``}``) everything before the key, and the end of a log can be
checked against a record without parsing a line. The store, the service's
start-up checks, the benchmarks and the tests take these positions from
here. (The codec in :mod:`idstitch.events`, a floor below, writes the same
layout and keeps its own copies for its hot loop; a test checks they agree.)
Standard library only: this module is on the start-up path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "BODY_SLICE",
    "HASH_KEY",
    "HASH_SLICE",
    "LIGHT_READ_BYTES",
    "LINE_START",
    "UNENDED_TAIL",
    "line_hash",
    "looks_torn",
    "names_record",
]

#: A log up to this size (about 600 records) is best read with the standard library (the
#: reader's *light* read: the same verdicts, about 10 µs a record slower), which saves the
#: import of ``orjson`` and the ``json``, ``dataclasses``, ``uuid`` and ``datetime`` it loads
#: (several ms of a start). Beyond it, ``orjson``'s speed pays for its import. Whole-log
#: reads by the audit tool and the doctor choose by it.
LIGHT_READ_BYTES: Final = 128 * 1024
#: Every record line starts with these bytes: compact JSON, ``v`` first.
LINE_START: Final = b'{"v":'
#: The key of the hash field, the last field of every record.
HASH_KEY: Final = b',"h":"'
#: The hash inside a whole line (one ending in ``\\n``): 32 hex digits before ``"}\\n``.
HASH_SLICE: Final = slice(-35, -3)
#: A whole line's body as its hash covers it (less the closing ``}``): everything before the key.
BODY_SLICE: Final = slice(None, -41)
#: How many bytes a line that lost its ``\\n`` has from its hash key on: key, hash, ``"}``.
UNENDED_TAIL: Final = len(HASH_KEY) + 32 + 2

_HEX_DIGITS = b"0123456789abcdef"


def line_hash(line: bytes) -> bytes | None:
    """The hash ``line`` ends with, as ASCII bytes; ``None`` when it does not end in one.

    ``line`` is a whole line with its ``\\n``, or one that lost only its ``\\n``.
    Only the position is looked at: the caller checks the hash links.
    """
    if not line.endswith(b"\n"):
        line += b"\n"
    if line[-41:-35] != HASH_KEY or not line.endswith(b'"}\n'):
        return None
    found = line[HASH_SLICE]
    return None if found.translate(None, _HEX_DIGITS) else found


def names_record(line: bytes, seq: int, h: str) -> bool:
    """Whether ``line`` (with or without its ``\\n``) is record ``seq`` whose hash is ``h``.

    Read from the line's bytes, unparsed: its hash field and its ``seq``
    near the start, as the codec writes them.
    """
    return line_hash(line) == h.encode("ascii") and b'"seq":%d,' % seq in line[:48]


def looks_torn(tail: bytes) -> bool:
    """Whether bytes after the last whole record can be a write cut off by a crash: NULs, or
    the start of a record line with no line end and no hash field yet (a whole record whose
    newline was damaged has its hash field, and is damage, not a tear)."""
    if not tail.strip(b"\x00"):
        return True
    started = tail.startswith(LINE_START) or LINE_START.startswith(tail)
    return started and b"\n" not in tail and HASH_KEY[1:] not in tail
