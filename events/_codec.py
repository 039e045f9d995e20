"""Records to and from the exact line format, with the blake2b hash link.

Two ways to read:

* *checked* (the default): the hash chain, ``seq`` continuity, the kind,
  the order of the keys and the exact JSON type of every field. No pydantic:
  this is the fast path replay runs on.
* *strict*: the checked read plus full validation of every record as the
  pydantic models validate it (value formats, legal user ids, known
  runtimes, a compact line with each key once).

A reader stops at the first damaged record and raises
:class:`LogDamagedError` naming its ``seq``, byte offset and cause; every
record before it has been yielded. ``orjson`` is imported on first use,
never at import time.

Writing, and the *light* checked read, use the standard library only
(:mod:`._canonical` for the JSON, ``_blake2`` for the hash link): they
are what the embedding service runs, on a CLI's start. The light read
gives every verdict the checked read gives (a line it cannot prove
canonical is parsed by ``orjson`` after all); it is slower per line, and
the audit tool and replay keep ``orjson``.

Theory of operation of the checked read (the replay hot path). The
reader's loop parses each line, computes its hash link from a blake2b
state copied rather than configured anew, and compares the record's whole
shape at once (the tuple of its keys, the tuple of its value types, the
``v`` its kind is written with). A line that passes those comparisons is
sound by construction; a line that fails any of them goes to
:func:`_check`, the one complete check, which names the first thing wrong
in a fixed order (or finds the line fine after all: a version its kind is
not written in, once upcast). So every verdict is :func:`_check`'s; the
comparisons only decide when it is needed, and a sound line costs no
function call of ours. The strict read runs the same loop, with one
comparison in place of the shape's: the line must match its kind's
full-line pattern (:mod:`._shapes`), which only a compact canonical line
whose every value the models accept can match (so it also refuses a key
written twice, which ``orjson`` reads once, with its last value). A line
it does not match goes to :func:`_check` with the models' validation,
which names their first objection, the repeated key or the whitespace:
the verdict is always the models', and pydantic is imported only when a
line needs them.
"""

from __future__ import annotations

from ._canonical import canonical_line, dumps
from ._errors import LogDamagedError, NewerFormatError
from ._kinds import (
    FORMAT_VERSION,
    KIND_FIELDS,
    KIND_VERSION,
    KINDS,
    OPENING_KINDS,
    ZERO_HASH,
    line_keys,
)

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import datetime
    from typing import IO, Any, Final, TypeAlias

    #: An upcaster turns a record of version ``n`` into one of version ``n + 1``.
    Upcaster: TypeAlias = Callable[["Record"], "Record"]

try:
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - hashlib's own fallback, through OpenSSL (3.5 ms)
    from hashlib import blake2b

__all__ = [
    "START",
    "UPCASTERS",
    "Checkpoint",
    "Record",
    "RecordReader",
    "body_hash",
    "check_line",
    "encode_record",
    "format_time",
    "upcast",
]

#: A record as read from a line: the decoded JSON object, keys in line order.
Record = dict[str, "Any"]

#: A fresh ``blake2b(digest_size=16)`` for one hash link, copied from one configured
#: once: a third cheaper than configuring each (the keyword arguments and parameter
#: block cost about as much as hashing a line). ``_blake2`` is the module
#: ``hashlib.blake2b`` comes from; ``hashlib`` itself loads OpenSSL.
_LINK: Final = blake2b(digest_size=16).copy


def _same_layout(record: Record) -> Record:
    """A step that only added a kind: version 1 to 2 (the ``heal`` kind), 2 to 3 (the
    ``alias_dropped`` kind) and 3 to 4 (the ``consent`` kind). A record of the older
    version is already laid out as the newer one says; it keeps the ``v`` its line holds."""
    return record


#: One function per version step, keyed by the version it upgrades from. A step
#: returns the record laid out as the next version; one that changes no layout
#: returns it unchanged.
UPCASTERS: Final[dict[int, Upcaster]] = {1: _same_layout, 2: _same_layout, 3: _same_layout}

_H_KEY: Final = b',"h":"'
# ',"h":"' + 32 hex digits + '"}' + newline
_H_TAIL_LEN: Final = len(_H_KEY) + 32 + 3
_ENVELOPE_TYPES: Final = (("v", (int,)), ("seq", (int,)), ("at", (str,)), ("kind", (str,)))
_SHAPES: Final = {
    kind: (line_keys(kind), (*_ENVELOPE_TYPES, *fields, ("h", (str,))))
    for kind, fields in KIND_FIELDS.items()
}
#: kind -> (its keys in order, the tuple of its values' usual types, the ``v`` it
#: is written with): one comparison each in the fast path. A value of another
#: allowed type (an ``import`` with no user) or another version the kind may be
#: read in is left to the complete check.
_SIGNATURES: Final = {
    kind: (keys, tuple(types[0] for _, types in typed), KIND_VERSION[kind])
    for kind, (keys, typed) in _SHAPES.items()
}


class Checkpoint(tuple[int, str, int]):
    """Where a log stands after a record: its ``seq``, its hash ``h`` and the
    byte ``offset`` just past its line.

    A named triple, as a ``NamedTuple`` would be, without importing ``typing``
    (10 ms of a CLI's start): it unpacks, compares and hashes as its tuple.
    """

    __slots__ = ()

    def __new__(cls, seq: int, h: str, offset: int) -> Checkpoint:
        return super().__new__(cls, (seq, h, offset))

    @property
    def seq(self) -> int:
        """The ``seq`` of the last record read (0 before the first)."""
        return self[0]

    @property
    def h(self) -> str:
        """That record's hash link."""
        return self[1]

    @property
    def offset(self) -> int:
        """The byte just past that record's line."""
        return self[2]

    def __repr__(self) -> str:
        return f"Checkpoint(seq={self[0]!r}, h={self[1]!r}, offset={self[2]!r})"

    def __reduce__(self) -> tuple[type[Checkpoint], tuple[int, str, int]]:
        return Checkpoint, (self[0], self[1], self[2])


#: The position before the first record.
START: Final = Checkpoint(0, ZERO_HASH, 0)


#: ``at`` up to its seconds; the microseconds and ``Z`` follow.
_AT_SECONDS: Final = "%Y-%m-%dT%H:%M:%S"


def format_time(when: datetime) -> str:
    """``when`` as the log writes it: UTC, microseconds, ``Z``."""
    from datetime import UTC

    if when.tzinfo is None:
        raise ValueError("record times must be timezone-aware")
    utc = when.astimezone(UTC)
    return f"{utc.strftime(_AT_SECONDS)}.{utc.microsecond:06d}Z"


def now_text() -> str:
    """The time now, as :func:`format_time` writes it, read without importing ``datetime``."""
    import time

    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{time.strftime(_AT_SECONDS, time.gmtime(seconds))}.{micros:06d}Z"


class _Tools:
    """How a reader parses and hashes lines, bound on first use (see :func:`_tools`).

    ``parse`` is the fast path's parser; ``loads`` the complete check's,
    which returns what ``orjson.loads`` returns for the line or raises
    ``ValueError`` as it does; ``signatures`` is :data:`_SIGNATURES`, its
    keys spelled by the parser.

    The checked read parses with ``orjson``, whose key cache hands out the
    same string objects for every line, so comparing a record's key tuple
    with its kind's mostly compares pointers. The light read parses with
    :func:`~._canonical.canonical_line`, which declines (``None``: the
    fast path's comparisons fail) any line that is not canonical; the
    complete check then asks ``orjson``.
    """

    __slots__ = ("loads", "parse", "signatures")

    parse: Callable[[bytes], Any]
    loads: Callable[[bytes], Any]
    signatures: dict[str, tuple[tuple[str, ...], tuple[type, ...], int]]

    def __init__(self, *, light: bool) -> None:
        if light:
            self.parse, self.loads = canonical_line, _light_loads
            self.signatures = _SIGNATURES
            return
        import orjson

        self.parse = self.loads = orjson.loads
        self.signatures = {
            kind: (tuple(orjson.loads(orjson.dumps(dict.fromkeys(keys)))), types, version)
            for kind, (keys, types, version) in _SIGNATURES.items()
        }


_BOUND: dict[bool, _Tools] = {}


def _tools(*, light: bool) -> _Tools:
    """The light tools (standard library) or the checked read's (``orjson``), made once."""
    tools = _BOUND.get(light)
    if tools is None:
        tools = _BOUND[light] = _Tools(light=light)
    return tools


def _light_loads(line: bytes) -> Any:  # noqa: ANN401 - a JSON value
    """What ``orjson.loads`` makes of ``line``: read by the standard library when the line is
    canonical, else by ``orjson`` itself (a line no writer of this format wrote)."""
    record = canonical_line(line)
    return _tools(light=False).loads(line) if record is None else record


def parse_line(line: bytes, *, light: bool = False) -> Any:  # noqa: ANN401 - a JSON value
    """``orjson.loads(line)``, or its light equal (see :class:`_Tools`); raises ``ValueError``."""
    return _tools(light=light).loads(line)


def body_hash(prev_h: str, body: bytes) -> str:
    """The hash link of a line whose bytes without its hash field are ``body``."""
    h = _LINK()
    h.update(prev_h.encode("ascii") + body)
    hexdigest: str = h.hexdigest()
    return hexdigest


def encode_record(
    after: Checkpoint, *, at: str, kind: str, fields: Mapping[str, object]
) -> tuple[bytes, Record]:
    """The line (with its newline) and record that follow ``after``.

    The line's ``v`` is the version the kind was introduced in
    (:data:`~idstitch.events._kinds.KIND_VERSION`). The bytes are ``orjson``'s
    (:mod:`._canonical`), made with the standard library. Only the shape is
    checked here (known kind, exactly its fields, values a line can hold);
    the caller checks the values (the store with :mod:`._values`, which
    agrees with :func:`idstitch.events.validate_record`). Raises
    ``ValueError``.
    """
    if kind not in KIND_FIELDS:
        raise ValueError(f"unknown record kind {kind!r}")
    names = [name for name, _ in KIND_FIELDS[kind]]
    if set(fields) != set(names):
        raise ValueError(f"a {kind} record has exactly the fields {names}, got {sorted(fields)}")
    version = KIND_VERSION[kind]
    record: Record = {"v": version, "seq": after.seq + 1, "at": at, "kind": kind}
    for name in names:
        record[name] = fields[name]
    try:
        body = dumps(record)
    except ValueError as exc:
        raise ValueError(f"a {kind} record cannot be written as JSON: {exc}") from None
    h = body_hash(after.h, body)
    record["h"] = h
    return body[:-1] + _H_KEY + h.encode("ascii") + b'"}\n', record


def upcast(
    record: Record,
    *,
    steps: Mapping[int, Upcaster] = UPCASTERS,
    target: int = FORMAT_VERSION,
) -> Record:
    """Bring an older ``record`` up to version ``target``, one step at a time.

    Each step (``steps[n]``) takes a record laid out as version ``n`` and
    returns it laid out as version ``n + 1``; a step that changes no layout
    returns the record as it is, ``v`` included (the version its line was
    written in). Raises :class:`KeyError` when a step is missing (a version
    this build never knew).
    """
    version = record["v"]
    while version < target:
        record = steps[version](record)
        version += 1
    return record


def _shape_problem(record: Record) -> tuple[str, str] | None:
    """(cause, detail) when ``record`` is not a well-formed current-version record."""
    kind = record.get("kind")
    shape = _SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        return "unknown-kind", f"kind {kind!r} is not one of {sorted(KIND_FIELDS)}"
    keys, typed = shape
    found = tuple(record)
    if found != keys:
        missing = [k for k in keys if k not in record]
        extra = [k for k in found if k not in keys]
        if missing or extra:
            return "bad-field", f"{kind} record: missing {missing}, unexpected {extra}"
        return "bad-field", f"{kind} record: keys out of order, expected {list(keys)}"
    for name, types in typed:
        if type(record[name]) not in types:
            allowed = " or ".join(t.__name__ for t in types)
            return "bad-field", f"{name} is {type(record[name]).__name__}, expected {allowed}"
    return None


def check_line(
    line: bytes,
    after: Checkpoint,
    *,
    validate: Callable[[Record], str | None] | None = None,
    light: bool = False,
) -> Record:
    """The record on ``line`` (with its newline), which must follow ``after``.

    Raises :class:`LogDamagedError` (or :class:`NewerFormatError`) naming
    ``after.seq + 1`` and ``after.offset`` when the line cannot be trusted.
    ``light``: parse with the standard library when the line is canonical
    (the verdict is the same).
    """
    prev = after.h.encode("ascii")
    return _check(
        line, after.seq + 1, prev, after.offset, validate, loads=_tools(light=light).loads
    )


def _check(
    line: bytes,
    seq: int,
    prev: bytes,
    offset: int,
    validate: Callable[[Record], str | None] | None,
    *,
    loads: Callable[[bytes], Any],
) -> Record:
    """The complete check of one line: the first thing wrong with it, in a fixed order.

    ``loads`` parses the line as ``orjson.loads`` does (see :class:`_Tools`).
    """
    if line[-1:] != b"\n":
        line = _ended(line, seq, offset)
    n = len(line)
    i = line.rfind(_H_KEY)
    if i < 0 or n - i != _H_TAIL_LEN:
        raise _damage(seq, offset, "bad-json", 'the line does not end with its "h" field')
    link = _LINK()
    link.update(prev + line[:i] + b"}")
    if link.hexdigest().encode() != line[i + 6 : i + 38]:
        raise _damage(
            seq,
            offset,
            "hash-chain",
            "the hash does not match: this record or the one before it "
            "was edited, removed, inserted or moved",
        )
    try:
        record: Record = loads(line)
    except ValueError as exc:  # orjson.JSONDecodeError
        raise _damage(seq, offset, "bad-json", str(exc)) from None
    # The line ends in '"}' and its line end (checked above), and a JSON value that ends in
    # "}" is an object: what parsed is a dict.
    v = record.get("v")
    if v != FORMAT_VERSION or type(v) is not int:
        record = _older_or_newer(record, seq, offset)
    problem = _shape_problem(record)
    if problem is not None:
        raise _damage(seq, offset, *problem)
    if record["seq"] != seq:
        raise _damage(seq, offset, "seq-gap", f"seq {record['seq']} where {seq} was expected")
    if validate is not None:
        detail = validate(record)
        if detail is not None:
            raise _damage(seq, offset, "bad-field", detail)
        # A key written twice parses as one (the last value wins): only the strict
        # read, whose fast path compares the canonical encoding, pays to look.
        twice = _repeated_key(line) if line.count(b'":') != len(record) else None
        if twice is not None:
            raise _damage(seq, offset, "bad-field", f"the key {twice!r} appears more than once")
        if not _compact(line):
            raise _damage(seq, offset, "bad-json", "whitespace between tokens: a line is compact")
    return record


def _compact(line: bytes) -> bool:
    """Whether ``line`` (one JSON object and its line end) has no whitespace outside strings."""
    inside = escaped = False
    for byte in line[:-1]:
        if inside:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # the closing quote
                inside = False
        elif byte == 0x22:
            inside = True
        elif byte in b" \t\r\n":
            return False
    return True


def _ended(line: bytes, seq: int, offset: int) -> bytes:
    """A last line with no line end, ended: a whole record that lost only its ``\\n``.

    Such a line is not torn: it is checked as the whole line it was, and a
    reader yields it (its checkpoint is where its line end goes, one byte
    past the file's end); the next append writes the missing ``\\n``. A
    cut-off write is a strict prefix of its line and never ends in a whole
    ``"h"`` field, which is always the last one. Any other unended line
    raises the damage :func:`_unended` names.
    """
    if line.endswith(b'"}') and line.rfind(_H_KEY) == len(line) - _H_TAIL_LEN + 1:
        return line + b"\n"
    raise _unended(line, seq, offset)


def _unended(line: bytes, seq: int, offset: int) -> LogDamagedError:
    """The damage of a last line with no line end: a torn tail only if a crash can explain it.

    Each record is appended in one write, so a cut-off one is a strict
    prefix of its line: it starts as every record ``seq`` starts (or is
    shorter than that start and agrees with it). A run of NUL bytes is what
    some filesystems show after a power cut when the size was updated but
    the data was not. Anything else is damage, kept as it is and never
    "repaired" away. (A whole record missing only its line end never gets
    here: see :func:`_ended`.)
    """
    n = len(line)
    i = line.rfind(_H_KEY)
    if i >= 0 and n - i >= _H_TAIL_LEN:
        # Not a cut-off write: a whole record whose line end was overwritten.
        return _damage(seq, offset, "bad-json", 'bytes after the "h" field instead of a line end')
    # As written by this build or an older one: each kind with its own version, and only a
    # kind that may stand at this seq. Record 1 is a genesis or an import (v 1) or a heal
    # (v 2); any later one is of the other kinds (v 1, v 3 for an alias_dropped, v 4 for a
    # consent).
    versions = sorted(
        {KIND_VERSION[kind] for kind in KINDS if (kind in OPENING_KINDS) == (seq == 1)}
    )
    starts = [b'{"v":%d,"seq":%d,' % (v, seq) for v in versions]
    if not line.strip(b"\0") or any(line.startswith(s) or s.startswith(line) for s in starts):
        return _damage(
            seq, offset, "torn-tail", f"{n} bytes with no line end (a write was cut off)"
        )
    foreign = f"{n} bytes with no line end that are not the start of record {seq}"
    return _damage(seq, offset, "bad-json", foreign)


def _repeated_key(line: bytes) -> str | None:
    """The first key ``line`` holds twice (a JSON parser keeps only one of them), or ``None``."""
    import json

    seen: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        seen.extend(key for i, key in enumerate(keys) if key in keys[:i])
        return dict(items)

    try:
        json.loads(line, object_pairs_hook=pairs)
    except ValueError:
        return None
    return seen[0] if seen else None


def _damage(seq: int, offset: int, cause: str, detail: str) -> LogDamagedError:
    error_type = NewerFormatError if cause == "newer-version" else LogDamagedError
    return error_type(seq=seq, offset=offset, cause=cause, detail=detail)


def _older_or_newer(record: Record, seq: int, offset: int) -> Record:
    """``record`` (whose ``v`` is not the newest) upcast, or the damage its ``v`` is."""
    v = record.get("v")
    if type(v) is not int:
        raise _damage(seq, offset, "bad-field", f"v is {v!r}, expected an integer")
    if v > FORMAT_VERSION:
        raise _damage(
            seq,
            offset,
            "newer-version",
            f"format version {v} is newer than this build reads ({FORMAT_VERSION}); "
            "upgrade idstitch to read it. Nothing was rewritten",
        )
    try:
        record = upcast(record)
    except KeyError:
        raise _damage(
            seq, offset, "bad-field", f"format version {v} was never a version of this log"
        ) from None
    # The version the (upcast) record still claims: a step that changed no layout
    # leaves it as written, and a kind the format added later cannot be in it.
    v, kind = record["v"], record.get("kind")
    introduced = KIND_VERSION.get(kind, v) if isinstance(kind, str) else v
    if v < introduced:
        raise _damage(
            seq,
            offset,
            "bad-field",
            f"v is {v}, but {kind} records exist from format version {introduced} on: "
            f"a version-{v} line cannot hold one",
        )
    return record


class RecordReader:
    """Iterate the records of a byte stream from a :class:`Checkpoint` on.

    Iterating raises :class:`LogDamagedError` at the first damaged record,
    after yielding every record before it. Once iteration stops (at the
    end, at damage, or when abandoned), :attr:`checkpoint` is the position
    after the last good record and :attr:`error` the damage found, if any.
    A whole last record that lost only its line end is good: it is yielded,
    and its checkpoint's offset is where its line end goes (the stream's
    size plus one), so that reading on from it after the line is completed
    starts at the next record.

    ``strict``: validate every record as the pydantic models do. ``light``
    (ignored when strict): read with the standard library only, for a
    process that must not import ``orjson`` (see the module); the same
    verdicts, more slowly.
    """

    def __init__(
        self,
        opener: Callable[[], IO[bytes]],
        start: Checkpoint = START,
        *,
        strict: bool = False,
        light: bool = False,
    ) -> None:
        self._opener = opener
        self.start = start
        self.checkpoint = start
        self.strict = strict
        self.light = light and not strict
        self.error: LogDamagedError | None = None

    def __iter__(self) -> Iterator[Record]:
        return self._read()

    def _read(self) -> Iterator[Record]:
        tools = _tools(light=self.light)
        link, signatures, h_key = _LINK, tools.signatures, _H_KEY
        parse: Callable[[bytes], Record] = tools.parse
        shapes: Mapping[str, Callable[[bytes], object]] | None = None
        problem: Callable[[Record], str | None] | None = None
        if self.strict:
            # A line its kind's pattern matches is one the models accept (see
            # ``_shapes``): its values are read by the same parser as the checked read's.
            from ._shapes import LINE_SHAPES

            shapes, problem = LINE_SHAPES, _models_problem
        seq, prev_h, offset = self.start
        prev = prev_h.encode("ascii")
        try:
            with self._opener() as stream:
                if offset:
                    stream.seek(offset)
                # One line at a time: a caller may use the stream's position as the
                # end of the record just yielded (the audit tool does).
                for line in stream:
                    try:
                        record = parse(line)
                        keys, types, version = signatures[kind := record["kind"]]
                        h = link()
                        h.update(prev)
                        h.update(line[:-41])
                        h.update(b"}")
                        sound = (
                            h.hexdigest() == record["h"]
                            and record["seq"] == seq + 1
                            and (
                                line[-41:-35] == h_key
                                and line[-1] == 10  # a newline: the line is whole
                                and record["v"] == version  # the kind's own: 1 for most
                                and tuple(record) == keys
                                and tuple(map(type, record.values())) == types
                                if shapes is None
                                # The pattern holds all of those (and the values) at once.
                                else shapes[kind](line) is not None
                            )
                        )
                    except (ValueError, KeyError, TypeError):  # not JSON, no object, no kind
                        sound = False
                    if not sound:
                        record = _check(line, seq + 1, prev, offset, problem, loads=tools.loads)
                        if line[-1] != 10:  # a whole last record that lost its line end:
                            line += b"\n"  # noqa: PLW2901 - its checkpoint is where that goes
                    seq += 1
                    offset += len(line)
                    prev = line[-35:-3]
                    yield record
        except LogDamagedError as exc:
            self.error = exc
            raise
        finally:
            self.checkpoint = Checkpoint(seq, prev.decode("ascii"), offset)


def _models_problem(record: Record) -> str | None:
    """The models' objection to ``record``, or ``None``: the strict read's complete check,
    which imports them (pydantic) only when a line is not proven by its pattern."""
    from ._models import record_problem

    return record_problem(record)
