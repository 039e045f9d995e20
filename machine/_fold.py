"""Replay: fold records into an identity, through the compiled transition table.

The fold is the only code that turns records into state. The identity
service folds the records it appends (and any another process appended)
through it, and :func:`replay` folds a whole log. It never raises on bad
input: damage stops it and is reported in the result, which keeps the
state of the last good record.
"""

from __future__ import annotations

from ._table import NO_RULE, RULES, Draft, Identity, State, compiled_table, transition_refused

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Final

    from idstitch.events import IdentityError

__all__ = ["Identity", "ReplayResult", "fold", "replay"]

_TABLE: Final = compiled_table()


class ReplayResult:
    """What a log folds into. Fields are ``None`` for an empty log.

    ``aliases`` maps every device id that was aliased (and not undone by an
    ``enqueue_failure`` or dropped by an ``alias_dropped``) to its user, an
    alias a ``heal`` or an ``import`` carries over included;
    ``error`` is ``None`` or the damage or impossible transition that
    stopped the fold (then the rest describes the last good record).
    """

    __slots__ = ("aliases", "error", "identity", "last_seq")

    def __init__(
        self,
        identity: Identity | None,
        aliases: dict[str, str],
        error: IdentityError | None,
    ) -> None:
        self.identity = identity
        self.aliases = aliases
        self.error = error
        self.last_seq = identity.seq if identity is not None else 0

    @property
    def state(self) -> State | None:
        """The state after the last good record."""
        return None if self.identity is None else self.identity.state

    @property
    def device_id(self) -> str | None:
        """The device in force."""
        return None if self.identity is None else self.identity.device_id

    @property
    def user_id(self) -> str | None:
        """The user known (stamped or aliased), if any."""
        return None if self.identity is None else self.identity.user_id

    @property
    def distinct_id(self) -> str | None:
        """The id events go under."""
        return None if self.identity is None else self.identity.distinct_id

    def __repr__(self) -> str:
        return f"ReplayResult({self.identity!r}, error={self.error!r})"


def fold(
    records: Iterable[Mapping[str, Any]],
    start: Identity | None = None,
    aliases: dict[str, str] | None = None,
) -> ReplayResult:
    """Fold ``records`` (checked records, in order) into the identity after ``start``.

    ``aliases`` (device id -> user) is updated in place when given. Never
    raises for bad records: a :class:`LogDamagedError` raised by the
    iterator, or an event the table does not allow, stops the fold and is
    returned as ``error``.

    The loop is :func:`~._table.step` unrolled over one :class:`~._table.Draft`:
    the same guard and effect functions, the same row of the table (the only
    place the next state comes from), without building an identity per
    record; ``seq`` and ``h`` are read once, from the last record folded.
    """
    from idstitch.events import IdentityError

    row_of, rules, no_rule = _TABLE.get, RULES, NO_RULE
    aliases = {} if aliases is None else aliases
    now = Draft(start)
    last: Mapping[str, Any] | None = None  # the last record folded
    error: IdentityError | None = None
    try:
        for record in records:
            kind = record["kind"]
            try:
                guard, effect = rules[kind]
            except KeyError:
                guard, effect = no_rule
            named = None if guard is None else guard(now, record)
            row = row_of((now.state, kind, named))
            if row is None:
                error = transition_refused(now, record, named)
                break
            effect(now, record, row, aliases)
            now.state = row.target
            last = record
    except IdentityError as exc:
        error = exc
    identity = start if last is None else now.identity(last["seq"], last["h"])
    return ReplayResult(identity, aliases, error)


def replay(records: Iterable[Mapping[str, Any]]) -> ReplayResult:
    """Fold a whole log's records from the start; never raises for bad input.

    ``replay(FileLog(path).records())`` is the identity that log describes.
    """
    return fold(records, None)
