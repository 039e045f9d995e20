"""Full-line patterns: the strict read's proof that the pydantic models accept a line.

One compiled pattern per record kind, generated from the format's one
declaration of each kind's fields (:data:`~._kinds.KIND_FIELDS`, in line
order) and from the rules the models apply to each field. A line that
matches its kind's pattern from its first byte to its line end, that
``orjson`` reads, and whose ``h`` holds the hash link the reader computed,
is the canonical compact encoding (keys in order, each once, no
whitespace, no escape) of a record of that kind, in the version the kind
is written with, every value of which the models accept. Such a line needs
neither the models nor a re-encoding: ``orjson`` has read its values.

The patterns are narrower than the models on purpose, so that each is
plainly inside them: text is printable ASCII without the two characters
JSON escapes (``"`` and ``\\``), numbers have at most 18 digits, a user
id starts with neither a space nor a quote and is no placeholder in any
case. A line no pattern matches goes to the models' complete validation,
which gives the verdict: a pattern decides how fast a line is accepted,
never whether. What a pattern cannot see stays with the reader: the hash
link and ``seq`` continuity, which depend on the line before.

The patterns are written for Python's matcher, whose cost is per step:
the time is spelled digit by digit (a counted repeat costs more than its
digits), and the placeholders are a tree of their common starts.
Imported by the strict read only (``re``, and about a millisecond of
compiling); the embedding paths never load it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ._ids import _SUSPECT, MAX_ID_LENGTH
from ._kinds import CONSENTS, KIND_FIELDS, KIND_VERSION, MAX_REASON_LENGTH, RUNTIMES, line_keys
from ._values import _AT_SHAPE

__all__ = ["LINE_SHAPES", "line_pattern"]

#: One character of text: printable ASCII but ``"`` and ``\``, the two that JSON escapes.
_CHAR = rb"[ !#-\[\]-~]"


def _text(most: int) -> bytes:
    """A string of 1 to ``most`` characters of text, not all spaces: what the models' device
    id pattern and their ``reason`` pattern both accept."""
    return b'"(?! *")' + _CHAR + b"{1,%d}" % most + b'"'


def _choice(words: Iterable[str]) -> bytes:
    """Any one of ``words``, escaped."""
    return b"|".join(re.escape(word.encode()) for word in words)


def _any_case(char: str) -> bytes:
    """``char`` in either case: a class for a letter, else the character itself."""
    if char.lower() == char.upper():
        return re.escape(char.encode())
    return b"[%s%s]" % (char.lower().encode(), char.upper().encode())


def _words(words: Iterable[str], end: bytes) -> bytes:
    """Any of ``words`` in any case, then ``end``, as a tree of their common starts: each
    branch starts with a character class, which the matcher tests before entering it (a
    flat alternation of the words, or one under ``(?i)``, enters every one of them)."""
    by_first: dict[str, list[str]] = {}
    ends = False
    for word in sorted(set(words)):
        if word:
            by_first.setdefault(word[0], []).append(word[1:])
        else:
            ends = True
    branches = [_any_case(first) + _words(rests, end) for first, rests in by_first.items()]
    if ends:
        branches.append(end)
    return branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"


#: A user id ``_ids._plain_user_id`` takes, so the models' rules do: text of 1 to 200
#: characters that does not start with a space or a quote (' or "), and is no placeholder
#: R13 refuses (a lower-cased word of ``_SUSPECT``, in any case, with spaces after it).
_USER_ID = (
    b'"(?!' + _words(_SUSPECT, b' *"') + b")"
    rb"[!#-&(-\[\]-~]" + _CHAR + b'{0,%d}"' % (MAX_ID_LENGTH - 1)
)

#: What each field holds, by its name, in its one JSON type: the models' annotations
#: narrowed as the module says. ``null`` is added where the kind allows ``None``. A
#: number is digits alone: ``orjson`` has refused a leading zero already.
_VALUES: dict[str, bytes] = {
    "device_id": _text(MAX_ID_LENGTH),
    "new_device_id": _text(MAX_ID_LENGTH),
    "user_id": _USER_ID,
    "linked_user": _USER_ID,
    "runtime": b'"(?:' + _choice(RUNTIMES) + b')"',
    "telemetry": b'"(?:' + _choice(CONSENTS) + b')"',
    "pid": rb"[0-9]{1,18}",
    "alias": rb"(?:true|false)",
    "aliased": rb"(?:true|false)",
    # A file name: not empty, no '/' (nor NUL: not text), not "." or "..".
    "kept": rb'"(?!\.\.?")[ !#-.0-\[\]-~]+"',
    "reason": _text(MAX_REASON_LENGTH),
}
assert {name for fields in KIND_FIELDS.values() for name, _ in fields} == set(_VALUES), (
    "every field of every kind has its pattern"
)

#: The envelope's values that do not depend on the kind (``v`` and ``kind`` do). ``at``
#: has the shape the models' pattern gives it, digit by digit. ``h`` is any
#: 32 bytes (counted at once): the reader compares the value ``orjson`` read there with
#: the hash link it computed, 32 lowercase hex digits, which no other 32 bytes can be
#: read as (an escape, a quote or a character of several bytes makes it shorter).
_ENVELOPE: dict[str, bytes] = {
    "seq": rb"[1-9][0-9]{0,17}",
    "at": b'"%s"' % b"".join(b"[0-9]" if c == "d" else re.escape(c.encode()) for c in _AT_SHAPE),
    "h": rb'"(?s:.{32})"',
}


def line_pattern(kind: str) -> re.Pattern[bytes]:
    """The pattern of a whole ``kind`` line (with its line end) that the models accept (read
    with ``orjson`` and the hash link: see the module), from :data:`~._kinds.KIND_FIELDS`."""
    values = {
        **_ENVELOPE,
        "v": b"%d" % KIND_VERSION[kind],
        "kind": re.escape(b'"%s"' % kind.encode()),
    }
    for name, types in KIND_FIELDS[kind]:
        value = _VALUES[name]
        values[name] = b"(?:null|" + value + b")" if type(None) in types else value
    pairs = (re.escape(b'"%s":' % key.encode()) + values[key] for key in line_keys(kind))
    return re.compile(rb"\{" + b",".join(pairs) + b"\\}\n")


#: kind -> the ``fullmatch`` of its line pattern (see the module for what a match proves).
LINE_SHAPES: dict[str, Callable[[bytes], re.Match[bytes] | None]] = {
    kind: line_pattern(kind).fullmatch for kind in KIND_FIELDS
}
