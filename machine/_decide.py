"""The decision: what one event does to an identity, before anything is written.

Pure: the caller supplies the runtime, the process id and any new device
id; nothing here reads a clock, a file or a random source. The record a
decision carries is what the caller appends; its transition is the row
that record's guard gives (:func:`~._table.transition_of`, the step's own
lookup), and folding that record is what then changes the state, so the
table is consulted the same way when deciding and when replaying. The only
policy here is whether a user event aliases (:func:`may_alias_now`) and
when nothing would change.
"""

from __future__ import annotations

from idstitch.events._kinds import Runtime

from ._table import USER_EVENTS, State, edge, guard_of, transition_of, transition_refused

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from idstitch.events._errors import TransitionError

    from ._table import Identity, Transition

__all__ = ["Decision", "check_decision", "decide", "may_alias_now"]


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


def may_alias_now(identity: Identity, runtime: str, *, may_alias: bool = True) -> bool:
    """Whether a user event aliases the device: it lasts (R2) and was never aliased (R3).

    The decider's policy; the record it writes says so (``alias``), and the
    table's guard (:func:`~._table.guard_of`) is read from that record.
    ``may_alias=False``: the caller will not try an alias now (its sink
    refuses them), so a never-aliased device is stamped.
    """
    return runtime == Runtime.PERSISTENT and may_alias and identity.linked_user is None


def _decision(identity: Identity | None, kind: str, fields: dict[str, Any]) -> Decision:
    """The decision to append ``kind`` with ``fields``, along the row the record takes."""
    return Decision(kind, fields, transition_of(identity, {"kind": kind, **fields}))


def _refuse(identity: Identity | None, event: str) -> TransitionError:
    """The error for an event that has no row from ``identity``'s state, whatever its guard."""
    return transition_refused(identity, {"kind": event}, None)


def check_decision(identity: Identity | None, decision: Decision) -> None:
    """Check that ``decision`` moves along the table's edge out of ``identity``'s state.

    What firing a live ``transitions`` machine checked, as one dict lookup in
    the compiled table (:func:`~._table.edge`; a trigger costs a hundred
    times more, and importing ``transitions`` 30 ms of a CLI's start). The
    caller runs it just before writing, so a decision made for a state the
    identity has since left is never appended. Raises
    :class:`TransitionError` when the table has no such edge from that
    state, ``AssertionError`` when it has another.
    """
    row = decision.transition
    found = edge(identity, {"kind": decision.kind}, row.guard)
    if found is not row:
        raise AssertionError(f"decided {row}, but from this state the table says {found}")


def decide(  # noqa: PLR0912 - one branch per event, in the table's order
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
    telemetry: str | None = None,
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
    ``None`` (nothing to record). ``consent`` takes ``telemetry``
    (``enabled`` or ``disabled``): ``None`` when the identity already holds
    that very choice (nothing to record).
    Raises :class:`TransitionError` for an event the table does not allow
    (for example ``enqueue_failure`` with no alias to undo, or ``heal`` on
    a log that has records); nothing is decided then.
    """
    if identity is None:
        if event == "genesis":
            assert device_id is not None
            return _decision(None, event, {"device_id": device_id, "runtime": runtime})
        if event == "import":
            assert device_id is not None
            adopted = {"device_id": device_id, "user_id": user_id, "aliased": aliased}
            return _decision(None, event, adopted)
        if event == "heal":
            assert device_id is not None
            assert kept is not None
            carried = {
                "device_id": device_id,
                "user_id": user_id,
                "linked_user": linked_user,
                "kept": kept,
                "pid": pid,
            }
            return _decision(None, event, carried)
        raise _refuse(None, event)  # only genesis, import and heal start a log
    if event in USER_EVENTS:
        assert user_id is not None
        fields: dict[str, Any] = {
            "device_id": identity.device_id,
            "user_id": user_id,
            "runtime": runtime,
            "pid": pid,
            "alias": may_alias_now(identity, runtime, may_alias=may_alias),
        }
        decision = _decision(identity, event, fields)
        row = decision.transition
        if not row.alias and row.target is identity.state and user_id == identity.user_id:
            return None
        return decision
    if event == "logout":
        assert device_id is not None
        fields = {"device_id": identity.device_id, "new_device_id": device_id, "pid": pid}
        return _decision(identity, event, fields)
    if event == "clear":
        decision = _decision(identity, event, {"device_id": identity.device_id, "pid": pid})
        if decision.transition.target is identity.state and identity.user_id is None:
            return None
        return decision
    if event == "enqueue_failure":  # no row unless the last record aliased
        fields = {"device_id": identity.device_id, "user_id": identity.user_id, "pid": pid}
        return _decision(identity, event, fields)
    if event == "alias_dropped":
        assert device_id is not None
        assert user_id is not None
        assert reason is not None
        assert aliases is not None
        return _dropped(
            identity, device_id=device_id, user_id=user_id, reason=reason, aliases=aliases, pid=pid
        )
    if event == "consent":
        assert telemetry is not None
        if telemetry == identity.consent:
            return None  # the choice recorded already: nothing to write
        fields = {"device_id": identity.device_id, "telemetry": telemetry, "pid": pid}
        return _decision(identity, event, fields)
    raise _refuse(identity, event)  # a second start of a log, or an unknown event


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
    fields = {"device_id": device_id, "user_id": user_id, "reason": reason, "pid": pid}
    if guard_of(identity, {"kind": "alias_dropped", **fields}) is None:
        return None  # the map and the identity disagree: nothing is taken back on that word
    return _decision(identity, "alias_dropped", fields)
