"""The timeline of a log: each record with the state before and after it.

Each record goes through the machine's step (:func:`idstitch.machine.step`),
the one the identity service and :func:`~idstitch.machine.replay` fold
with, so the timeline can never disagree with them; the step also says
what the record did about an alias. A record the transition table does
not allow stops the timeline, as it stops a replay.
"""

from __future__ import annotations

from idstitch.events import TransitionError
from idstitch.events._frozen import Frozen, freeze
from idstitch.machine import INITIAL, step

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from idstitch.events import Record
    from idstitch.machine import Identity

__all__ = ["Step", "Timeline"]


class Step(Frozen):
    """One row of the timeline. ``kept``: the damaged log a ``heal`` kept aside; ``reason``:
    why an ``alias_dropped``'s alias was dropped; ``telemetry``: a ``consent``'s choice. A
    drop's ``device_id`` is the alias's device, which may be an earlier one than the device
    in force."""

    __slots__ = (
        "after",
        "alias",
        "at",
        "before",
        "device_id",
        "distinct_id",
        "kept",
        "kind",
        "offset",
        "reason",
        "seq",
        "telemetry",
        "user_id",
    )
    seq: int
    at: str
    kind: str
    offset: int
    before: str
    after: str
    device_id: str
    user_id: str | None
    distinct_id: str
    #: What the record did about an alias: ``sent``, ``undone``, ``adopted``, ``carried``,
    #: ``dropped`` or ``None`` (the step's alias mark).
    alias: str | None
    kept: str | None
    reason: str | None
    telemetry: str | None

    def __init__(
        self,
        *,
        seq: int,
        at: str,
        kind: str,
        offset: int,
        before: str,
        after: str,
        device_id: str,
        user_id: str | None,
        distinct_id: str,
        alias: str | None,
        kept: str | None = None,
        reason: str | None = None,
        telemetry: str | None = None,
    ) -> None:
        freeze(self, locals())

    def as_json(self) -> dict[str, Any]:
        """The row as ``replay --json`` prints it."""
        return {
            "type": "record",
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "offset": self.offset,
            "before": self.before,
            "after": self.after,
            "device_id": self.device_id,
            "user_id": self.user_id,
            "distinct_id": self.distinct_id,
            "alias": self.alias,
            "kept": self.kept,
            "reason": self.reason,
            "telemetry": self.telemetry,
        }


class Timeline:
    """Iterate :meth:`steps` over ``(record, offset)`` pairs; then read the outcome.

    :attr:`identity` is the identity after the last good record,
    :attr:`aliases` every standing alias (device -> user), :attr:`refused`
    the transition the table refused (with the offset of its record), if any.
    """

    def __init__(self) -> None:
        self.identity: Identity | None = None
        self.aliases: dict[str, str] = {}
        self.refused: tuple[TransitionError, int] | None = None
        self.count = 0

    def steps(self, records: Iterable[tuple[Record, int]]) -> Iterator[Step]:
        """One :class:`Step` per record, until the end or an impossible transition."""
        for record, offset in records:
            before = self.identity
            try:
                _, after, mark = step(before, record, self.aliases)
            except TransitionError as error:
                self.refused = (error, offset)
                return
            self.identity = after
            self.count += 1
            yield Step(
                seq=record["seq"],
                at=record["at"],
                kind=record["kind"],
                offset=offset,
                before=INITIAL if before is None else before.state.value,
                after=after.state.value,
                device_id=record["device_id"],
                user_id=record.get("user_id"),
                distinct_id=after.distinct_id,
                alias=mark,
                kept=record.get("kept"),
                reason=record.get("reason"),
                telemetry=record.get("telemetry"),
            )
