"""The log's canonical JSON, spelled and read with the standard library's C code only.

A line of the log is compact JSON as ``orjson.dumps`` writes it: keys in
order, no whitespace, text as UTF-8, and only ``"``, ``\\`` and control
characters escaped (``\\n``, ``\\t``... where JSON has a short form,
``\\u00XX`` otherwise). The hash chain runs over those bytes, so every
writer must produce exactly them. The embedding path cannot afford
``orjson`` (about 25 ms of a CLI's start), nor ``json`` (which brings
``re`` and ``enum``: about 8 ms): this module writes the same bytes with
``_json.encode_basestring``, the C function ``json`` escapes strings with,
and reads with the C scanner ``json.loads`` runs on. A property test holds
:func:`dumps` to ``orjson.dumps`` on generated records of every kind.

Theory of operation of :func:`canonical_line`. A line is taken only when
encoding what the scanner read gives back the very bytes of the line. Such
a line is, byte for byte, what ``orjson`` writes for that object, and
``orjson`` reads its own output back as the same values: so whatever this
module takes, ``orjson`` reads the same way. Anything else (whitespace, an
escape ``orjson`` would not write, a key given twice, a number out of
range or with a fraction, a lone surrogate, no JSON at all) is declined
with ``None`` and the caller asks ``orjson``: no verdict of a reader ever
depends on which parser read the line.
"""

from __future__ import annotations

# json's C accelerator: part of every CPython build (and orjson, a dependency, runs on
# nothing else).
from _json import encode_basestring, make_encoder, make_scanner

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["INT_RANGE", "canonical_line", "dumps", "loads"]

#: The integers a line may hold: those ``orjson`` writes (64 bits, signed or not).
INT_RANGE = (-(2**63), 2**64 - 1)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _refuse_float(text: str) -> object:
    raise ValueError(f"{text} is a number with a fraction or an exponent: no line holds one")


def _int_of_a_line(text: str) -> int:
    value = int(text)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise ValueError("Integer exceeds 64-bit range")  # orjson's words
    return value


class _ScanContext:
    """The settings ``json.JSONDecoder`` hands the C scanner, without importing ``json``:
    how to make a number of its text (both may refuse it with ``ValueError``)."""

    strict = True
    object_hook = None
    object_pairs_hook = None

    def __init__(
        self, parse_float: Callable[[str], object], parse_int: Callable[[str], object]
    ) -> None:
        self.parse_float = parse_float
        self.parse_int = parse_int
        self.parse_constant = _refuse_constant


#: The C scanner of any JSON document (for :func:`loads`).
_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(_ScanContext(float, int))  # type: ignore[arg-type]
#: The C scanner of a line: it reads only what :func:`dumps` writes (no fraction, no
#: exponent, no integer beyond 64 bits); anything else raises ``ValueError``.
_scan_line: Callable[[str, int], tuple[Any, int]] = make_scanner(
    _ScanContext(_refuse_float, _int_of_a_line)  # type: ignore[arg-type]
)


def _unwritable(value: object) -> object:
    raise TypeError(f"a {type(value).__name__} is not written in the log's JSON")


#: json's C encoder, compact, text as UTF-8: ``orjson``'s bytes for what :func:`_check` passes.
_encode: Callable[[object, int], list[str]] = make_encoder(
    None, _unwritable, encode_basestring, None, ":", ",", False, False, False
)


def loads(text: str) -> object:
    """``json.loads`` of one document (whitespace around it allowed), by the C scanner.

    Raises ``ValueError`` (``RecursionError`` for absurd nesting).
    """
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError("no JSON value") from None
    except SystemError:
        # Python 3.11's scanner raises its syntax errors through json.decoder,
        # which it only finds when already imported; otherwise the error comes
        # out as a SystemError. Let ``json`` report it properly.
        import json

        return json.loads(text)
    if text[end:].strip(" \t\n\r"):
        raise ValueError("extra data after the JSON value")
    return value


def _check(value: object) -> None:
    """Raise where ``orjson`` would refuse ``value``, or where it holds a type no line holds."""
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise ValueError("Integer exceeds 64-bit range")  # orjson's words
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"a key must be a string, not {type(key).__name__}")
            _check(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item)
    else:
        # Floats too: no record or snapshot holds one, and their spelling is orjson's own.
        _unwritable(value)


def dumps(value: object) -> bytes:
    """``value`` as ``orjson.dumps`` writes it, for strings, integers, booleans, ``None``,
    and dicts (string keys), lists and tuples of them.

    Raises ``ValueError`` where ``orjson`` refuses too (an integer beyond 64
    bits, a key that is not a string, a lone surrogate) and for any other
    type, floats included.
    """
    try:
        _check(value)
        return "".join(_encode(value, 0)).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate, which UTF-8 cannot hold") from None
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def canonical_line(line: bytes) -> dict[str, Any] | None:
    """The object on ``line`` (ended by its ``\\n``) when the line is exactly its canonical
    encoding (see the module); ``None`` for any other line."""
    if line[-1:] != b"\n":
        return None
    body = line[:-1]
    try:
        value, _ = _scan_line(body.decode("utf-8"), 0)
        # What follows the value, if anything, makes the encoding differ from the line. The
        # scanner read no float and no integer beyond 64 bits, so the encoder needs no check.
        same = type(value) is dict and "".join(_encode(value, 0)).encode("utf-8") == body
    except (ValueError, StopIteration, SystemError, RecursionError):  # UnicodeDecodeError too
        return None
    return value if same else None
