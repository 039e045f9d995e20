"""What the log reader and the snapshot reader must do with any bytes at all.

Shared by the hypothesis properties (``test_reliability_readers.py``) and
the coverage-guided atheris targets (``fuzz/``), so both check the same
things. No pytest and no hypothesis here. Each check raises
``AssertionError`` when a property fails and lets any unexpected
exception escape: both are findings.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

from idstitch.events import (
    START,
    Checkpoint,
    LogDamagedError,
    Record,
    RecordReader,
    record_problem,
)
from idstitch.events._codec import check_line
from idstitch.machine import Identity, replay
from idstitch.service._trust import snapshot_identity as _snapshot_identity
from idstitch.store import MAX_SNAPSHOT_BYTES, read_snapshot
from idstitch.store._fs import last_line
from idstitch.store._log import Tail, _tail_of
from idstitch.store._snapshot import SNAPSHOT_VERSION

__all__ = [
    "check_log_bytes",
    "check_snapshot_bytes",
    "check_strict_read",
    "complete_read",
    "fast_read",
]

#: What a read made of some bytes: the records, the damage (cause, seq, offset), the end.
Outcome = tuple[list[Record], tuple[str, int, int] | None, Checkpoint]


def _read(data: bytes, *, strict: bool) -> tuple[list[dict[str, object]], RecordReader]:
    reader = RecordReader(lambda: io.BytesIO(data), strict=strict)
    records: list[dict[str, object]] = []
    with contextlib.suppress(LogDamagedError):  # kept in reader.error
        records.extend(reader)
    return records, reader


def complete_read(data: bytes, *, strict: bool = False) -> Outcome:
    """What the complete check alone makes of ``data``, line by line through ``check_line``
    (``strict``: every record judged by the pydantic models, no fast path at all)."""
    records: list[Record] = []
    after = START
    for line in io.BytesIO(data):
        try:
            record = check_line(line, after, validate=record_problem if strict else None)
        except LogDamagedError as exc:
            return records, (exc.cause, exc.seq, exc.offset), after
        records.append(record)
        # A whole last record that lost only its line end ends where that line end goes.
        end = after.offset + len(line) + (line[-1:] != b"\n")
        after = Checkpoint(record["seq"], record["h"], end)
    return records, None, after


def fast_read(data: bytes, *, strict: bool = False, light: bool = False) -> Outcome:
    """What the reader makes of ``data``, with its fast path (checked, ``light`` or strict)."""
    stream = RecordReader(lambda: io.BytesIO(data), strict=strict, light=light)
    records: list[Record] = []
    try:
        records.extend(stream)
    except LogDamagedError as exc:
        return records, (exc.cause, exc.seq, exc.offset), stream.checkpoint
    return records, None, stream.checkpoint


def check_strict_read(data: bytes) -> None:
    """The strict reader (a line's pattern, else the models) gives the models' verdict alone:
    the same records, the same damage (cause, seq and offset), the same end."""
    expected = complete_read(data, strict=True)
    actual = fast_read(data, strict=True)
    assert expected == actual, (expected[1:], actual[1:])


def check_log_bytes(data: bytes) -> None:
    """The log reader, replay and the tail check on arbitrary bytes.

    * reading raises nothing but :class:`LogDamagedError`, and what it
      yields is exactly the whole lines before its checkpoint, seq 1..n (a
      last record that lost only its ``\\n`` is whole: its checkpoint is
      one byte past the end, where that ``\\n`` goes);
    * a missing final ``\\n`` changes neither what is read nor where it stops;
    * damage in an unended last line is ``torn-tail`` exactly when a crash
      mid-append can explain those bytes (log-format.md), else not; an
      unended line shaped as a whole record is never torn;
    * strict reading yields a prefix of what checked reading yields;
    * replay never raises and folds at most those records;
    * when the whole read found no damage but a torn tail, the tail check
      (what an append trusts) agrees with it exactly, and the start-up peek
      at the last line finds that record's line; when the tail check raises,
      it raises :class:`LogDamagedError`.
    """
    records, reader = _read(data, strict=False)
    end = reader.checkpoint.offset
    unended = end == len(data) + 1  # the last record lost only its line end
    whole = data + b"\n" if unended else data
    assert 0 <= end <= len(whole)
    assert whole[:end].count(b"\n") == len(records)
    assert end == 0 or whole[end - 1 : end] == b"\n"
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    if records:
        assert (reader.checkpoint.seq, reader.checkpoint.h) == (
            records[-1]["seq"],
            records[-1]["h"],
        )
    error = reader.error
    if error is None:
        assert end == len(whole)
    else:
        assert (error.seq, error.offset) == (len(records) + 1, end)
    if not data.endswith(b"\n"):
        ended, ended_reader = _read(data + b"\n", strict=False)
        assert (ended, ended_reader.checkpoint) == (records, reader.checkpoint)
    rest = data[end:]
    shaped_whole = rest.endswith(b'"}') and rest.rfind(b',"h":"') == len(rest) - 40
    if error is not None and b"\n" not in rest and (b'"h":"' not in rest or shaped_whole):
        # An unended last line is torn exactly when a crash can explain it: the start of
        # the next record as written ({"v":1,"seq":N,, or {"v":2,"seq":1, for a heal, which
        # only starts a log, or {"v":3,"seq":N, for an alias_dropped, which never does), or a
        # strict prefix of its line, or NULs. A line shaped as a whole record (ending in its
        # "h" field) is no prefix.
        seq = len(records) + 1
        starts = [b'{"v":%d,"seq":%d,' % (v, seq) for v in ((1, 2) if seq == 1 else (1, 3))]
        crash = not rest.strip(b"\0") or any(
            rest.startswith(start) or start.startswith(rest) for start in starts
        )
        assert (error.cause == "torn-tail") == (crash and not shaped_whole), (error, rest[:60])

    strict, _ = _read(data, strict=True)
    assert strict == records[: len(strict)]

    result = replay(RecordReader(lambda: io.BytesIO(data)))
    assert result.last_seq <= len(records)

    try:
        tail = _tail_of(lambda at, n: data[at : at + n], len(data))
    except LogDamagedError:
        assert error is not None
        assert error.cause != "torn-tail", error
        return
    if error is None or error.cause == "torn-tail":
        last = records[-1] if records else None
        torn = 0 if unended else len(data) - end
        assert Tail(reader.checkpoint, last, torn, unended) == tail
        line_start = whole.rfind(b"\n", 0, max(0, end - 1)) + 1
        assert last_line(data) == (data[line_start : min(end, len(data))] if records else b"")


def _json_or_none(data: bytes) -> tuple[bool, object]:
    """(parsed, value) by the standard library, with the reader's rules (no NaN, UTF-8 only)."""

    def no_constants(name: str) -> object:
        raise ValueError(name)

    try:
        return True, json.loads(data.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None


def check_snapshot_bytes(data: bytes, path: str) -> None:
    """The snapshot reader on arbitrary bytes written at ``path``.

    * it never raises and never says ``missing`` for a file that exists;
    * a file over the size limit is refused unread;
    * it agrees with the standard library's JSON parser: what does not
      parse is ``corrupt``, an object without the marker is ``foreign``
      with exactly that object, a snapshot of a version up to this build's is ``ok`` with
      exactly its object;
    * the identity a snapshot holds is checked without raising.
    """
    with open(path, "wb") as stream:
        stream.write(data)
    found = read_snapshot(path)
    assert found.status in ("ok", "foreign", "corrupt", "newer"), found
    if len(data) > MAX_SNAPSHOT_BYTES:
        assert (found.status, found.problem) == (
            "corrupt",
            f"larger than {MAX_SNAPSHOT_BYTES} bytes",
        )
        return
    parsed, value = _json_or_none(data)
    if not parsed or not isinstance(value, dict):
        assert found.status == "corrupt", (found, parsed)
        return
    if value.get("format") != "idstitch-snapshot":
        assert (found.status, found.data) == ("foreign", value)
        return
    version = value.get("version")
    if type(version) is int and 1 <= version <= SNAPSHOT_VERSION:
        assert (found.status, found.data) == ("ok", value)
        identity = _snapshot_identity(found)
        assert identity is None or identity == Identity.from_dict(found.data)
    elif type(version) is int and version > SNAPSHOT_VERSION:
        assert found.status == "newer"
    else:
        assert found.status == "corrupt"
    assert os.path.exists(path)
