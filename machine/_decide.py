"""The decision: what one event does to an identity, before anything is written.

Pure: the caller supplies the runtime, the process id and any new device
id; nothing here reads a clock, a file or a random source. The record a
decision carries is what the caller appends; folding that record (see
:mod:`._fold`) is what then changes the state, so the table is consulted
the same way when deciding and when replaying.
"""

from __future__ import annotations

from ._table import INITIAL, USER_EVENTS, State, carried_guard, compiled_table

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Final

    from ._fold import Identity
    from ._table import Transition

__all__ = ["Decision", "check_decision", "decide", "user_guard"]

_TABLE: Final = compiled_table()


class Decision:
    """A change to make: append a ``kind`` record with ``fields``, moving along ``transition``.

    ``alias``: hand one alias to the sink after appending (the only way an
    alias is ever sent). ``stamp``: the distinct id becomes the user id.
    ``rotate``: a new device id comes into force.
    """

    __slots__ = ("fields", "kind", "transition")

    def __init__(self, kind: str, fields: dict[str, Any], transition: Transition) -> None:
        self.kind = kind
        self.fields = fields
        self.transition = transition

    @property
    def alias(self) -> bool:
        """Whether the change sends ``$create_alias`` (rules R2, R3)."""
        return self.transition.alias

    @property
    def stamp(self) -> bool:
        """Whether events go under the user id afterwards (rule R1)."""
        return self.transition.target in (State.STAMPED, State.ALIASED)

    @property
    def rotate(self) -> bool:
        """Whether a fresh device id comes into force (rule R7)."""
        return self.kind == "logout"

    def __repr__(self) -> str:
        return f"Decision({self.kind}, {self.fields!r}, {self.transition!r})"


def user_guard(identity: Identity, user_id: str, runtime: str, *, may_alias: bool = True) -> str:
    """The guard of a user event: ``first``, ``linked`` or ``other`` (see :mod:`._table`).

    ``may_alias=False``: the caller will not try an alias now (its sink
    refuses them), so a never-aliased device is stamped (``other``).
    """
    if identity.linked_user == user_id:
        return "linked"
    if runtime == "persistent" and may_alias and identity.linked_user is None:
        return "first"
    return "other"


def _row(identity: Identity | None, event: str, guard: str | None) -> Transition:
    from idstitch.events import TransitionError

    state = INITIAL if identity is None else identity.state.value
    row = _TABLE.get((state, event, guard))
    if row is None:
        seq = 1 if identity is None else identity.seq + 1
        raise TransitionError(seq=seq, state=state, event=event, guard=guard)
    return row


def check_decision(identity: Identity | None, decision: Decision) -> None:
    """Check that ``decision`` moves along the table's edge out of ``identity``'s state.

    What firing a live ``transitions`` machine checked, as one dict lookup in
    the compiled table (a trigger costs a hundred times more, and importing
    ``transitions`` 30 ms of a CLI's start). The caller runs it just before
    writing, so a decision made for a state the identity has since left is
    never appended. Raises :class:`TransitionError` when the table has no
    such edge from that state, ``AssertionError`` when it has another.
    """
    row = decision.transition
    found = _row(identity, row.event, row.guard)
    if found is not row:
        raise AssertionError(f"decided {row}, but from this state the table says {found}")


def decide(
    identity: Identity | None,
    event: str,
    *,
    runtime: str,
    pid: int,
    user_id: str | None = None,
    device_id: str | None = None,
    aliased: bool = False,
    may_alias: bool = True,
    linked_user: str | None = None,
    kept: str | None = None,
    reason: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> Decision | None:
    """What ``event`` does to ``identity``; ``None`` when it changes nothing.

    ``user_id`` goes with ``response``, ``login``, ``import`` and ``heal``;
    ``device_id`` is the device to mint with ``genesis``, the device to
    carry on with ``import`` and ``heal``, and the new device with
    ``logout``; ``aliased`` goes with ``import``; ``linked_user`` (whom the
    device was already aliased to, ``None``: never aliased) and ``kept``
    (the name of the damaged log kept aside) go with ``heal``;
    ``may_alias=False`` stamps a user event that would otherwise alias.
    ``alias_dropped`` takes the dropped alias's ``device_id`` and
    ``user_id``, the ``reason`` and ``aliases``, every standing alias of
    the whole log (device -> user, :attr:`ReplayResult.aliases`): a drop
    of an alias the log never made, or already undone or dropped, is
    ``None`` (nothing to record).
    Raises :class:`TransitionError` for an event the table does not allow
    (for example ``enqueue_failure`` with no alias to undo, or ``heal`` on
    a log that has records); nothing is decided then.
    """
    if identity is None:
        if event == "genesis":
            assert device_id is not None
            return Decision(
                "genesis", {"device_id": device_id, "runtime": runtime}, _row(None, event, None)
            )
        if event == "import":
            assert device_id is not None
            guard = carried_guard(user_id, linked=aliased)
            adopted = {"device_id": device_id, "user_id": user_id, "aliased": aliased}
            return Decision("import", adopted, _row(None, event, guard))
        if event == "heal":
            assert device_id is not None
            assert kept is not None
            guard = carried_guard(user_id, linked=user_id == linked_user)
            carried = {
                "device_id": device_id,
                "user_id": user_id,
                "linked_user": linked_user,
                "kept": kept,
                "pid": pid,
            }
            return Decision("heal", carried, _row(None, event, guard))
        _row(None, event, None)  # raises TransitionError: only genesis, import, heal start a log
        raise AssertionError("unreachable")
    if event in USER_EVENTS:
        assert user_id is not None
        row = _row(identity, event, user_guard(identity, user_id, runtime, may_alias=may_alias))
        if not row.alias and row.target is identity.state and user_id == identity.user_id:
            return None
        fields: dict[str, Any] = {
            "device_id": identity.device_id,
            "user_id": user_id,
            "runtime": runtime,
            "pid": pid,
            "alias": row.alias,
        }
        return Decision(event, fields, row)
    if event == "logout":
        assert device_id is not None
        row = _row(identity, event, None)
        fields = {"device_id": identity.device_id, "new_device_id": device_id, "pid": pid}
        return Decision(event, fields, row)
    if event == "clear":
        row = _row(identity, event, None)
        if row.target is identity.state and identity.user_id is None:
            return None
        return Decision(event, {"device_id": identity.device_id, "pid": pid}, row)
    if event == "enqueue_failure":
        undone = None if identity.undo is None else "was_" + identity.undo[0].value
        row = _row(identity, event, undone)
        assert identity.user_id is not None
        fields = {"device_id": identity.device_id, "user_id": identity.user_id, "pid": pid}
        return Decision(event, fields, row)
    if event == "alias_dropped":
        assert device_id is not None
        assert user_id is not None
        assert reason is not None
        assert aliases is not None
        return _dropped(
            identity, device_id=device_id, user_id=user_id, reason=reason, aliases=aliases, pid=pid
        )
    _row(identity, event, None)  # raises TransitionError: a second start of a log, unknown events
    raise AssertionError("unreachable")


def _dropped(
    identity: Identity,
    *,
    device_id: str,
    user_id: str,
    reason: str,
    aliases: Mapping[str, str],
    pid: int,
) -> Decision | None:
    """The ``alias_dropped`` of ``device_id``'s alias to ``user_id``, if that alias stands."""
    if aliases.get(device_id) != user_id:
        return None  # never made, or undone or dropped already: nothing to take back
    if device_id != identity.device_id:
        guard = "earlier"
    elif identity.linked_user == user_id:
        guard = "current"
    else:
        return None  # the map and the identity disagree: nothing is taken back on that word
    fields = {"device_id": device_id, "user_id": user_id, "reason": reason, "pid": pid}
    return Decision("alias_dropped", fields, _row(identity, "alias_dropped", guard))
