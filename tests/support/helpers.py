"""Plain helpers for the log tests: build logs, forge lines, compare line lists.

No hypothesis and no pytest here, so spawned worker processes can import it
cheaply.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import orjson
from idstitch.events import START, Checkpoint, LogDamagedError, Record, RecordReader
from idstitch.events._codec import body_hash
from idstitch.store import MemoryLog

if TYPE_CHECKING:
    from idstitch.machine import Identity

__all__ = [
    "AT",
    "VALID_FIELDS",
    "BuiltLog",
    "ReadOutcome",
    "bare_environment",
    "build_log",
    "checkpoint_after",
    "drain",
    "drive_life",
    "first_untrusted",
    "forge_line",
    "read_all",
    "sample_specs",
    "split_lines",
]


def bare_environment() -> dict[str, str]:
    """This environment without coverage's own variables: for a fresh interpreter whose
    loaded modules a test checks (under ``make test`` coverage measures every process a test
    starts, and its start-up loads modules of its own)."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}


#: A fixed record time for hand-written examples.
AT = "2026-11-27T17:00:00.000000Z"


class BuiltLog(NamedTuple):
    """A log's bytes, its lines (each with its newline) and its records."""

    data: bytes
    lines: list[bytes]
    records: list[Record]


class ReadOutcome(NamedTuple):
    """What reading a byte string yielded, the damage it stopped at, and where it stood."""

    records: list[Record]
    error: LogDamagedError | None
    checkpoint: Checkpoint


def build_log(specs: Iterable[tuple[str, Mapping[str, object], str]]) -> BuiltLog:
    """Append ``(kind, fields, at)`` records to a fresh :class:`MemoryLog`."""
    log = MemoryLog()
    records = [log.append(kind, fields, at=at) for kind, fields, at in specs]
    data = log.getvalue()
    return BuiltLog(data, split_lines(data), records)


def sample_specs(count: int) -> list[tuple[str, Mapping[str, object], str]]:
    """``count`` fixed, valid records cycling through the kinds of a typical life."""
    device, user, new_device = (
        "9f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
        "user-42",
        "3b2a1c0d-9e8f-4a7b-b6c5-d4e3f2a1b0c9",
    )
    cycle: list[tuple[str, Mapping[str, object]]] = [
        ("genesis", {"device_id": device, "runtime": "persistent"}),
        (
            "response",
            {
                "device_id": device,
                "user_id": user,
                "runtime": "persistent",
                "pid": 4242,
                "alias": True,
            },
        ),
        ("enqueue_failure", {"device_id": device, "user_id": user, "pid": 4242}),
        (
            "login",
            {
                "device_id": device,
                "user_id": user,
                "runtime": "persistent",
                "pid": 4243,
                "alias": True,
            },
        ),
        ("clear", {"device_id": device, "pid": 4244}),
        ("logout", {"device_id": device, "new_device_id": new_device, "pid": 4245}),
    ]
    return [
        (kind, fields, f"2026-11-27T17:00:{i % 60:02d}.{i:06d}Z")
        for i, (kind, fields) in ((i, cycle[i % len(cycle)]) for i in range(count))
    ]


def split_lines(data: bytes) -> list[bytes]:
    """``data`` cut after every ``\\n`` (only ``\\n``), keeping the ends; a torn rest is kept."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def checkpoint_after(lines: Sequence[bytes], records: Sequence[Record], count: int) -> Checkpoint:
    """The position after the first ``count`` records of a log."""
    if count == 0:
        return START
    last = records[count - 1]
    return Checkpoint(last["seq"], last["h"], sum(len(line) for line in lines[:count]))


def first_untrusted(original: Sequence[bytes], damaged: Sequence[bytes]) -> int:
    """The index of the first line of ``damaged`` that is not the original's line there."""
    for index, line in enumerate(damaged):
        if index >= len(original) or original[index] != line:
            return index
    raise AssertionError("the damaged log is a prefix of the original")


def drain(reader: RecordReader) -> ReadOutcome:
    """Iterate ``reader`` to its end or its first damage; any other exception propagates."""
    records: list[Record] = []
    try:
        records.extend(reader)
    except LogDamagedError as exc:
        return ReadOutcome(records, exc, reader.checkpoint)
    return ReadOutcome(records, None, reader.checkpoint)


def read_all(data: bytes, *, strict: bool = False, since: Checkpoint = START) -> ReadOutcome:
    """Read ``data`` with the checked (or strict) reader, keeping what came before any damage."""
    return drain(RecordReader(lambda: io.BytesIO(data), since, strict=strict))


def forge_line(record: Mapping[str, object], prev_h: str) -> bytes:
    """A line holding ``record`` (keys in the given order, no ``h``) with a correct hash link.

    For records this build would never write itself (a newer ``v``, an unknown kind).
    """
    body = orjson.dumps(dict(record))
    h = body_hash(prev_h, body)
    return body[:-1] + b',"h":"' + h.encode("ascii") + b'"}\n'


def drive_life(
    opening: tuple[str, Mapping[str, object], str],
    steps: Iterable[tuple[str, str | None, str]],
) -> tuple[MemoryLog, Identity, dict[str, str]]:
    """Open a log with ``opening``, then decide, append and fold each ``(event, user, runtime)``.

    Steps the machine refuses (an ``enqueue_failure`` with no alias to undo)
    or that change nothing append nothing. An ``alias_dropped`` step names
    the dropped alias's user (``None``: the user of the alias that stands
    on that device, if any), and in place of a runtime the device:
    ``current`` (the one in force) or ``earlier`` (the life's first device);
    it is decided against the standing aliases the fold keeps. A ``consent``
    step names the choice (``enabled``, ``disabled``) in place of a user. A logout
    rotates to a device named ``minted-device-N``. Returns the log, the
    identity folded record by record, and the standing aliases (device ->
    user) that fold kept.
    """
    from idstitch.events import TransitionError
    from idstitch.machine import fold
    from idstitch.machine._decide import decide

    kind, fields, at = opening
    log = MemoryLog()
    aliases: dict[str, str] = {}
    identity = fold([log.append(kind, fields, at=at)], None, aliases).identity
    assert identity is not None
    first_device = identity.device_id
    for number, (event, user, runtime) in enumerate(steps):
        device, named = f"minted-device-{number}", user
        telemetry = None
        if event == "consent":
            telemetry, named = user, None
        if event == "alias_dropped":
            device = identity.device_id if runtime == "current" else first_device
            if named is None:  # the alias that stands, if one does
                named = aliases.get(device, "user-nobody")
        try:
            decision = decide(
                identity,
                event,
                runtime=runtime,
                pid=number,
                user_id=named,
                device_id=device,
                reason="expired",
                aliases=dict(aliases),
                telemetry=telemetry,
            )
        except TransitionError:
            continue
        if decision is None:
            continue
        record = log.append(decision.kind, decision.fields, at=at)
        after = fold([record], identity, aliases)
        assert after.error is None, after.error
        assert after.identity is not None
        identity = after.identity
    return log, identity, aliases


#: One valid set of fields for each record kind.
VALID_FIELDS: dict[str, dict[str, object]] = {
    "genesis": {"device_id": "d-1", "runtime": "persistent"},
    "import": {"device_id": "d-1", "user_id": None, "aliased": False},
    "response": {
        "device_id": "d-1",
        "user_id": "u-1",
        "runtime": "persistent",
        "pid": 7,
        "alias": True,
    },
    "login": {
        "device_id": "d-1",
        "user_id": "u-1",
        "runtime": "ephemeral",
        "pid": 7,
        "alias": False,
    },
    "enqueue_failure": {"device_id": "d-1", "user_id": "u-1", "pid": 7},
    "clear": {"device_id": "d-1", "pid": 7},
    "logout": {"device_id": "d-1", "new_device_id": "d-2", "pid": 7},
    "heal": {
        "device_id": "d-1",
        "user_id": "u-1",
        "linked_user": "u-1",
        "kept": "identity.jsonl.damaged-1",
        "pid": 7,
    },
    "alias_dropped": {
        "device_id": "d-1",
        "user_id": "u-1",
        "reason": "refused: HTTP 400",
        "pid": 7,
    },
    "consent": {"device_id": "d-1", "telemetry": "disabled", "pid": 7},
}
