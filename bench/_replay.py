"""B1: replaying the log, ours and the baselines, each over the same file.

* ``checked``: ``replay(FileLog(path).records())``: the hash chain, ``seq``,
  the kind, the key order and the exact JSON type of every field, folded
  through the transition table. What ``idstitch replay`` runs.
* ``strict``: the same with ``records(strict=True)``: every record also
  validated as the pydantic models would (a line its kind's pattern
  matches is one they accept; they judge any other line themselves).
* ``floor``: the work no checked replay can skip: one ``orjson.loads`` and
  one blake2b hash link (computed and compared) per line, in a bare loop.
* ``loads``: bare ``orjson.loads`` of every line.
* ``transitions``: the same checked reader, every record fired as a
  trigger of the live ``transitions.Machine`` built from the same table
  (:class:`LiveMachine`, which then steps the identity as the fold does)
  instead of looked up in the compiled table: the replay idstitch would
  be if its fold drove ``transitions``.
* ``eventsourcing``: the same records as events of an ``eventsourcing``
  aggregate, stored in its in-memory (POPO) recorder, then replayed with
  ``repository.get`` (for context; needs the ``bench`` extra).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from idstitch.store._line import BODY_SLICE, HASH_SLICE

__all__ = [
    "EventsourcingReplay",
    "bare_loads",
    "checked_replay",
    "fire_all",
    "floor",
    "strict_replay",
    "transitions_replay",
]

_ZERO = b"0" * 32


def checked_replay(path: Path) -> int:
    """Replay with the checked reader; the number of records folded."""
    from idstitch.machine import replay
    from idstitch.store import FileLog

    result = replay(FileLog(path).records())
    if result.error is not None:
        raise RuntimeError(f"the benchmark log {path} does not replay: {result.error}")
    return result.last_seq


def strict_replay(path: Path) -> int:
    """Replay with every record validated as the pydantic models would."""
    from idstitch.machine import replay
    from idstitch.store import FileLog

    result = replay(FileLog(path).records(strict=True))
    if result.error is not None:
        raise RuntimeError(f"the benchmark log {path} does not replay strictly: {result.error}")
    return result.last_seq


def floor(path: Path) -> int:
    """``orjson.loads`` and the blake2b link of every line, checked, in a bare loop."""
    import hashlib

    import orjson

    loads, blake2b = orjson.loads, hashlib.blake2b
    prev, count = _ZERO, 0
    with path.open("rb") as stream:
        for line in stream:
            record = loads(line)
            if blake2b(prev + line[BODY_SLICE] + b"}", digest_size=16).hexdigest() != record["h"]:
                raise RuntimeError(f"line {count + 1} of {path} does not link")
            prev = line[HASH_SLICE]
            count += 1
    return count


def bare_loads(path: Path) -> int:
    """``orjson.loads`` of every line, nothing else."""
    import orjson

    loads, count = orjson.loads, 0
    with path.open("rb") as stream:
        for line in stream:
            loads(line)
            count += 1
    return count


def transitions_replay(path: Path) -> int:
    """The checked replay with a ``transitions.Machine`` trigger moving the state.

    The same checked reader as ours feeds every record to the live machine
    built from the same table (:class:`LiveMachine`): the record's guard
    picks the trigger's edge, and the same step as the fold's works out the
    rest of the identity; so the two cases differ only in what moves the
    state. Returns the number of records fired.
    """
    return fire_all(path)[0]


def fire_all(path: Path) -> tuple[int, str]:
    """Feed every record of ``path`` to the live machine: (records fired, final state)."""
    from idstitch.machine._live import LiveMachine
    from idstitch.store import FileLog

    machine = LiveMachine()
    feed = machine.feed
    count = 0
    for record in FileLog(path).records():
        feed(record)
        count += 1
    return count, machine.state


class EventsourcingReplay:
    """The log's records as events of one ``eventsourcing`` aggregate in its in-memory recorder.

    :meth:`store` triggers and saves them (timed on its own, once);
    calling the object replays them all with ``repository.get``.
    """

    def __init__(self) -> None:
        self._app: Any = None
        self._id: Any = None
        self.stored = 0

    @staticmethod
    def available() -> bool:
        """Whether the ``eventsourcing`` library is installed (the ``bench`` extra)."""
        return importlib.util.find_spec("eventsourcing") is not None

    def store(self, path: Path) -> int:
        """Record every line of ``path`` as one event and save them; the number stored."""
        import orjson

        application = importlib.import_module("eventsourcing.application")
        aggregate_type = _aggregate_type()
        app = application.Application()
        aggregate = aggregate_type()
        with path.open("rb") as stream:
            for line in stream:
                record = orjson.loads(line)
                aggregate.record(kind=record["kind"], fields=record)
        app.save(aggregate)
        self._app, self._id = app, aggregate.id
        self.stored = aggregate.version - 1
        return self.stored

    def __call__(self, _: object = None) -> int:
        """Replay every stored event into a fresh aggregate; the number replayed."""
        aggregate = self._app.repository.get(self._id)
        return int(aggregate.version) - 1


def _aggregate_type() -> Any:  # noqa: ANN401 - built on first use: eventsourcing is optional
    # Imported by name: the ``bench`` extra may be absent where the tests are type-checked.
    domain = importlib.import_module("eventsourcing.domain")
    aggregate: Any = domain.Aggregate
    event: Any = domain.event

    class DeviceIdentity(aggregate):  # type: ignore[misc]  # a base of type Any
        """What the fold keeps, as an event-sourced aggregate: the last kind, device and user."""

        def __init__(self) -> None:
            self.kind = "initial"
            self.device_id: object = None
            self.user_id: object = None

        @event("Recorded")  # type: ignore[untyped-decorator]  # the library, imported by name
        def record(self, kind: str, fields: dict[str, Any]) -> None:
            self.kind = kind
            self.device_id = fields.get("device_id", self.device_id)
            self.user_id = fields.get("user_id", self.user_id)

    return DeviceIdentity
