"""Replay: fold records into an identity, through the compiled transition table.

The fold is the only code that turns records into state. The identity
service folds the records it appends (and any another process appended)
through it, and :func:`replay` folds a whole log. It never raises on bad
input: damage stops it and is reported in the result, which keeps the
state of the last good record.
"""

from __future__ import annotations

from ._table import INITIAL, State, carried_guard, compiled_table

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Final

    from idstitch.events import IdentityError

__all__ = ["Identity", "ReplayResult", "fold", "replay"]

_TABLE: Final = compiled_table()
_STATES: Final = {state.value: state for state in State}


class Identity:
    """The identity after a record: a value, never changed in place.

    ``linked_user`` is whom the current device is aliased to (``None``:
    never aliased, or its alias was undone or dropped). ``undo`` is
    ``(state, user_id, linked_user)`` before the alias the last record made,
    while an ``enqueue_failure`` can still undo it. ``seq`` and ``h`` name
    the last record folded in.
    """

    __slots__ = ("device_id", "h", "linked_user", "seq", "state", "undo", "user_id")

    def __init__(
        self,
        *,
        state: State,
        device_id: str,
        user_id: str | None,
        linked_user: str | None,
        undo: tuple[State, str | None, str | None] | None,
        seq: int,
        h: str,
    ) -> None:
        self.state = state
        self.device_id = device_id
        self.user_id = user_id
        self.linked_user = linked_user
        self.undo = undo
        self.seq = seq
        self.h = h

    @property
    def distinct_id(self) -> str:
        """The user id when stamped or aliased, else the device id."""
        if self.user_id is not None and self.state in (State.STAMPED, State.ALIASED):
            return self.user_id
        return self.device_id

    def as_dict(self) -> dict[str, Any]:
        """The identity as plain JSON values (the snapshot's ``identity`` part)."""
        return {
            "state": self.state.value,
            "device_id": self.device_id,
            "user_id": self.user_id,
            "linked_user": self.linked_user,
            "undo": None if self.undo is None else [self.undo[0].value, *self.undo[1:]],
            "seq": self.seq,
            "h": self.h,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identity | None:
        """The identity :meth:`as_dict` wrote, or ``None`` if ``data`` is not one."""
        try:
            undo = data["undo"]
            identity = cls(
                state=_STATES[data["state"]],
                device_id=_text(data["device_id"]),
                user_id=_opt_text(data["user_id"]),
                linked_user=_opt_text(data["linked_user"]),
                undo=None
                if undo is None
                else (_STATES[undo[0]], _opt_text(undo[1]), _opt_text(undo[2])),
                seq=_count(data["seq"]),
                h=_text(data["h"]),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        if (identity.user_id is None) != (identity.state in (State.ANONYMOUS, State.RESET)):
            return None
        return identity

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash((self.seq, self.h))

    def __repr__(self) -> str:
        return (
            f"Identity(state={self.state.value}, device_id={self.device_id!r}, "
            f"user_id={self.user_id!r}, seq={self.seq})"
        )


def _text(value: object) -> str:
    if type(value) is not str or not value:
        raise ValueError(value)
    return value


def _opt_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(value)
    return value


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


def fold(  # noqa: PLR0912, PLR0915 - one flat loop over locals: the replay hot path
    records: Iterable[Mapping[str, Any]],
    start: Identity | None = None,
    aliases: dict[str, str] | None = None,
) -> ReplayResult:
    """Fold ``records`` (checked records, in order) into the identity after ``start``.

    ``aliases`` (device id -> user) is updated in place when given. Never
    raises for bad records: a :class:`LogDamagedError` raised by the
    iterator, or an event the table does not allow, stops the fold and is
    returned as ``error``.

    The loop keeps the identity in locals and touches each record only for
    what its kind needs: it works out the record's guard, looks the one row
    up in the table (the only place the next state comes from), then applies
    the kind's effect on the device, the user and the alias map; ``seq`` and
    ``h`` are read once, from the last record folded.
    """
    from idstitch.events import IdentityError, TransitionError

    table = _TABLE
    aliases = {} if aliases is None else aliases
    if start is None:
        state: State | str = INITIAL
        device = user = linked = None
        undo: tuple[State | str, str | None, str | None] | None = None
    else:
        state, device, user, linked = start.state, start.device_id, start.user_id, start.linked_user
        undo = start.undo
    last: Mapping[str, Any] | None = None  # the last record folded
    error: IdentityError | None = None
    try:
        for record in records:
            kind = record["kind"]
            user_event = kind == "response" or kind == "login"  # noqa: PLR1714 - faster
            if user_event:
                new_user = record["user_id"]
                if record["alias"]:
                    guard: str | None = "first"
                else:
                    guard = "linked" if new_user == linked else "other"
            elif kind == "enqueue_failure":
                guard = None if undo is None else "was_" + undo[0]
            elif kind == "import":
                guard = carried_guard(record["user_id"], linked=record["aliased"])
            elif kind == "heal":
                new_user = record["user_id"]
                guard = carried_guard(new_user, linked=new_user == record["linked_user"])
            elif kind == "alias_dropped":
                # The device in force only drops the alias it has; another device is one a
                # logout rotated away (whether it had that alias is the decider's question).
                if record["device_id"] != device:
                    guard = "earlier"
                else:
                    guard = "current" if record["user_id"] == linked else None
            else:
                guard = None
            try:
                row = table[state, kind, guard]
            except KeyError:
                error = TransitionError(
                    seq=record["seq"], state=str(state), event=kind, guard=guard
                )
                break
            if user_event:
                if row.alias:
                    undo = (state, user, linked)
                    linked = new_user
                    aliases[record["device_id"]] = new_user
                else:
                    undo = None
                user = new_user
            else:
                if kind == "enqueue_failure":
                    assert undo is not None
                    _, user, linked = undo
                    if linked is None:
                        aliases.pop(device, None)  # type: ignore[arg-type]
                    else:  # the device's earlier alias stands again
                        aliases[device] = linked  # type: ignore[index]
                elif kind == "logout":
                    device, user, linked = record["new_device_id"], None, None
                elif kind == "clear":
                    user = None
                elif kind == "heal":  # the alias it carries was sent before the heal
                    device, user, linked = record["device_id"], new_user, record["linked_user"]
                    if linked is not None:
                        aliases[device] = linked
                elif kind == "alias_dropped":  # never delivered: the device is free again (R9)
                    dropped = record["device_id"]
                    if aliases.get(dropped) == record["user_id"]:
                        del aliases[dropped]
                    if guard == "current":
                        linked = None
                else:  # genesis, import
                    device, user, linked = record["device_id"], record.get("user_id"), None
                    if row.target is State.ALIASED:
                        linked = user
                        aliases[record["device_id"]] = record["user_id"]
                undo = None
            state = row.target
            last = record
    except IdentityError as exc:
        error = exc
    if state == INITIAL:
        return ReplayResult(None, aliases, error)
    assert isinstance(state, State)
    assert device is not None
    if last is not None:
        seq, h = last["seq"], last["h"]
    else:
        assert start is not None
        seq, h = start.seq, start.h
    identity = Identity(
        state=state,
        device_id=device,
        user_id=user,
        linked_user=linked,
        undo=undo,  # type: ignore[arg-type]  # a State once past INITIAL
        seq=seq,
        h=h,
    )
    return ReplayResult(identity, aliases, error)


def replay(records: Iterable[Mapping[str, Any]]) -> ReplayResult:
    """Fold a whole log's records from the start; never raises for bad input.

    ``replay(FileLog(path).records())`` is the identity that log describes.
    """
    return fold(records, None)
