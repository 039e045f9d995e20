"""Every identity transition, declared once, as data.

Two rules for this file, after h11's ``_state.py``:

* Everything that decides a transition lives here: the table
  (:data:`TRANSITIONS`), and beside it the one :func:`step` that works out
  a record's guard and its effect on the identity. The replay fold, the
  decider, the live ``transitions.Machine``, the audit's timeline and
  person graph and the state diagram are all built on these; nothing else
  may move the state.
* This file does not know where events come from (a file, memory, a test).

Theory of operation. The state is one of four: ``anonymous`` (only the
device is known), ``stamped`` (a user is known and events go under their
id, but this device is not aliased to them), ``aliased`` (a user is known
and this device's history is merged into theirs) and ``reset`` (after a
logout: user forgotten, device rotated). Events are the record kinds of
the log. What a user event does depends on a *guard*, computed from facts
outside the state (the runtime, whom the device is already aliased to):

* ``first``: the runtime is persistent and this device was never aliased:
  alias it (rules R2, R3). The only edge that sends ``$create_alias``.
* ``linked``: the device is already aliased to this very user: back to
  ``aliased``, nothing sent.
* ``other``: anything else (ephemeral runtime, or a device aliased to
  someone else): stamp only (R1, R3, R4).

An ``enqueue_failure`` undoes the alias just recorded (R9): its guard is
the state the alias left (``was_anonymous``, ``was_reset``, ``was_stamped``),
a shallow history transition. The pseudo-state ``initial`` is the empty log.

Three events start a log, and only a log: ``genesis`` (a new device),
``import`` (another tool's state file taken over) and ``heal`` (a damaged
log kept aside, the identity it could trust carried into a new one). The
last two share their guards, computed from the user they carry and whom
the device is already aliased to: ``no_user`` (anonymous), ``with_user``
(the user is the one the device is aliased to: aliased) and
``unlinked_user`` (any other user: stamped). Neither sends an alias: an
alias they carry was sent before.

An ``alias_dropped`` says the delivery layer finally dropped an alias this
log made (PostHog refused it for good, or it expired undelivered), at any
time after it: the device counts as never aliased again (R9), so a later
user event may alias it, once. Its guard says which device it names:
``current`` (the device in force, whose alias it takes back: ``aliased``
becomes ``stamped`` with the same user; ``stamped`` and ``anonymous``,
where the alias stood behind another user or none, stay as they are) or
``earlier`` (a device a logout rotated away: the state does not move,
only the device's alias is forgotten). Whether the alias it names was
ever made is decided outside the state, from the whole log's aliases.

A ``consent`` records the user's choice about telemetry (``enabled`` or
``disabled``). It is legal in every state and moves none: a self-loop on
each, with no guard. Its effect sets the identity's ``consent`` (and
``consent_at``, the record's time), which every later record keeps.

The step. Each event has one guard function and one effect function
(:data:`RULES`). The guard reads the identity and the record, nothing else
(:func:`guard_of`): a record about to be written is judged as one read
back. It picks the row; the row alone gives the next state; the effect sets
the device, the user, ``linked_user``, ``undo`` and the map of standing
aliases, and names what the record did about an alias. :func:`step` does
this for one record and returns a new :class:`Identity`; the fold runs the
same functions in a loop over one :class:`Draft` changed in place, so a
million-record replay builds no object per record. The decider's only
policy is whether a user event aliases; it then takes the row its record's
guard gives, so deciding and replaying cannot disagree.

What this file does not do: ``idstitch verify`` keeps its own books of the
log invariants (L1-L9) and does not use the step's alias map, on purpose.
It is a second opinion on logs this code did not write; only its **T**
(a record the table refuses) is the step's verdict.
"""

from __future__ import annotations

from idstitch.events._errors import TransitionError
from idstitch.events._kinds import CONSENTS, KINDS
from idstitch.events._names import Names

TYPE_CHECKING = False  # typing itself is not imported at run time: start-up cost

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, ClassVar, Final

__all__ = [
    "EVENTS",
    "FORGETTINGS",
    "INITIAL",
    "NO_RULE",
    "RULES",
    "TRANSITIONS",
    "USER_EVENTS",
    "USER_GUARDS",
    "Draft",
    "Identity",
    "State",
    "Transition",
    "carried_guard",
    "compiled_table",
    "edge",
    "guard_of",
    "step",
    "transition_of",
    "transition_refused",
]


class State(Names):
    """Where a device's identity stands; each state is the string of its name in lower case.

    A :class:`~idstitch.events._names.Names` rather than an ``enum.StrEnum``:
    this module is on the start-up path, and ``enum`` costs about 5 ms there.
    """

    ANONYMOUS: ClassVar[State]
    STAMPED: ClassVar[State]
    ALIASED: ClassVar[State]
    RESET: ClassVar[State]


#: The pseudo-state of an empty log (``[*]`` in the diagram).
INITIAL: Final = "initial"

#: Every event, named as the record kind that carries it.
EVENTS: Final = KINDS

#: The events that carry an authenticated user id.
USER_EVENTS: Final = ("response", "login")

#: The events that forget a user: never lost (R16), and allowed under opt-out (R14).
FORGETTINGS: Final = ("logout", "clear")

#: The guards of the user events, in the order they are tried.
USER_GUARDS: Final = ("first", "linked", "other")


class Transition:
    """``source --event [guard]--> target``; ``alias`` when the edge sends ``$create_alias``.

    A plain slotted class rather than a dataclass: this module is on the
    start-up path, and ``dataclasses`` imports ``inspect``.
    """

    __slots__ = ("alias", "event", "guard", "source", "target", "why")

    def __init__(  # noqa: PLR0917 - rows of a table read best as positional tuples
        self, source: str, event: str, guard: str | None, target: State, alias: bool, why: str
    ) -> None:
        self.source = source
        self.event = event
        self.guard = guard
        self.target = target
        self.alias = alias
        self.why = why

    def __repr__(self) -> str:
        guard = f" [{self.guard}]" if self.guard else ""
        sends = " / alias" if self.alias else ""
        return f"<{self.source} --{self.event}{guard}{sends}--> {self.target}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transition) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, str, str | None, str, bool]:
        return (self.source, self.event, self.guard, self.target, self.alias)


def carried_guard(user_id: str | None, *, linked: bool) -> str:
    """The guard of an ``import`` or a ``heal``: ``no_user``, ``with_user`` or ``unlinked_user``.

    ``linked``: the device is already aliased to ``user_id``.
    """
    if user_id is None:
        return "no_user"
    return "with_user" if linked else "unlinked_user"


def _user_event_rows(event: str) -> list[Transition]:
    rows = []
    for source in State:
        rows += [
            Transition(source, event, "first", State.ALIASED, True, "R2, R3: alias once"),
            Transition(source, event, "linked", State.ALIASED, False, "R3: device already theirs"),
            Transition(source, event, "other", State.STAMPED, False, "R1, R3, R4: stamp only"),
        ]
    return rows


TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition(INITIAL, "genesis", None, State.ANONYMOUS, False, "a new log mints a device"),
    Transition(INITIAL, "import", "no_user", State.ANONYMOUS, False, "adopt a foreign state file"),
    Transition(INITIAL, "import", "with_user", State.ALIASED, False, "adopt an aliased device"),
    Transition(INITIAL, "import", "unlinked_user", State.STAMPED, False, "adopt a known user"),
    Transition(INITIAL, "heal", "no_user", State.ANONYMOUS, False, "carry a device over a heal"),
    Transition(INITIAL, "heal", "with_user", State.ALIASED, False, "carry its alias over a heal"),
    Transition(INITIAL, "heal", "unlinked_user", State.STAMPED, False, "carry a user over a heal"),
    *_user_event_rows("response"),
    *_user_event_rows("login"),
    Transition(State.ALIASED, "enqueue_failure", "was_anonymous", State.ANONYMOUS, False, "R9"),
    Transition(State.ALIASED, "enqueue_failure", "was_reset", State.RESET, False, "R9"),
    Transition(State.ALIASED, "enqueue_failure", "was_stamped", State.STAMPED, False, "R9"),
    Transition(State.ANONYMOUS, "clear", None, State.ANONYMOUS, False, "R8: nothing to forget"),
    Transition(State.STAMPED, "clear", None, State.ANONYMOUS, False, "R8: forget the user"),
    Transition(State.ALIASED, "clear", None, State.ANONYMOUS, False, "R8: forget the user"),
    Transition(State.RESET, "clear", None, State.ANONYMOUS, False, "R8: anonymous, device kept"),
    *(
        Transition(source, "logout", None, State.RESET, False, "R7: forget, rotate the device")
        for source in State
    ),
    Transition(State.ALIASED, "alias_dropped", "current", State.STAMPED, False, "R9: stamp only"),
    Transition(State.STAMPED, "alias_dropped", "current", State.STAMPED, False, "R9: unlinked"),
    Transition(State.ANONYMOUS, "alias_dropped", "current", State.ANONYMOUS, False, "R9: unlinked"),
    *(
        Transition(source, "alias_dropped", "earlier", source, False, "R9: an earlier device")
        for source in State
    ),
    *(
        Transition(source, "consent", None, source, False, "R14: telemetry on or off")
        for source in State
    ),
)


def compiled_table() -> dict[tuple[str, str, str | None], Transition]:
    """:data:`TRANSITIONS` keyed by ``(source, event, guard)``, for the replay fold."""
    table: dict[tuple[str, str, str | None], Transition] = {}
    for row in TRANSITIONS:
        key = (row.source, row.event, row.guard)
        if key in table:
            raise AssertionError(f"transition declared twice: {key}")
        table[key] = row
    return table


_TABLE: Final = compiled_table()
_STATES: Final = {state.value: state for state in State}


class Identity:
    """The identity after a record: a value, never changed in place.

    ``linked_user`` is whom the current device is aliased to (``None``:
    never aliased, or its alias was undone or dropped). ``undo`` is
    ``(state, user_id, linked_user)`` before the alias the last record made,
    while an ``enqueue_failure`` can still undo it. ``seq`` and ``h`` name
    the last record folded in. ``consent`` is the user's last recorded
    telemetry choice (``enabled``, ``disabled``; ``None``: never recorded)
    and ``consent_at`` the ``at`` of the record that made it.
    """

    __slots__ = (
        "consent",
        "consent_at",
        "device_id",
        "h",
        "linked_user",
        "seq",
        "state",
        "undo",
        "user_id",
    )

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
        consent: str | None = None,
        consent_at: str | None = None,
    ) -> None:
        self.state = state
        self.device_id = device_id
        self.user_id = user_id
        self.linked_user = linked_user
        self.undo = undo
        self.seq = seq
        self.h = h
        self.consent = consent
        self.consent_at = consent_at

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
            "consent": self.consent,
            "consent_at": self.consent_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identity | None:
        """The identity :meth:`as_dict` wrote, or ``None`` if ``data`` is not one.

        A snapshot written before ``consent`` existed has neither consent key: it reads
        as never recorded.
        """
        try:
            undo = data["undo"]
            consent = _choice(data.get("consent"))
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
                consent=consent,
                consent_at=None if consent is None else _text(data.get("consent_at")),
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


def _choice(value: object) -> str | None:
    """A consent as a snapshot holds it: one of :data:`CONSENTS`, or ``None``."""
    if value is not None and value not in CONSENTS:
        raise ValueError(value)
    return value if value is None else str(value)


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(value)
    return value


# --- The step: what one record does -------------------------------------------------------
#
# Each event has one guard function (which row of the table the record takes) and one effect
# function (what it does to the identity's device, user, alias and undo, and to the map of
# standing aliases). They work on a Draft: the identity's fields, changed in place while a
# fold runs, so that the replay's hot loop builds no object per record. The state itself is
# only ever set from the row the table gives.


class Draft:
    """An identity being folded: :class:`Identity`'s fields, changed in place by the effects.

    ``state`` is :data:`INITIAL` (and the rest ``None``) before the first record.
    """

    __slots__ = ("consent", "consent_at", "device_id", "linked_user", "state", "undo", "user_id")

    def __init__(self, identity: Identity | None = None) -> None:
        self.state: State | str = INITIAL
        self.device_id: str | None = None
        self.user_id: str | None = None
        self.linked_user: str | None = None
        self.undo: tuple[State | str, str | None, str | None] | None = None
        self.consent: str | None = None
        self.consent_at: str | None = None
        if identity is not None:
            self.state, self.device_id = identity.state, identity.device_id
            self.user_id, self.linked_user = identity.user_id, identity.linked_user
            self.undo = identity.undo
            self.consent, self.consent_at = identity.consent, identity.consent_at

    def identity(self, seq: int, h: str) -> Identity | None:
        """The identity as it stands, after record ``seq`` (``None`` before the first)."""
        if self.state == INITIAL:
            return None
        assert isinstance(self.state, State)
        assert self.device_id is not None
        return Identity(
            state=self.state,
            device_id=self.device_id,
            user_id=self.user_id,
            linked_user=self.linked_user,
            undo=self.undo,  # type: ignore[arg-type]  # a State once past INITIAL
            seq=seq,
            h=h,
            consent=self.consent,
            consent_at=self.consent_at,
        )


if TYPE_CHECKING:
    #: What a guard reads: an identity, or a draft of one.
    Facts = Identity | Draft
    Guard = Callable[[Facts, Mapping[str, Any]], str | None]
    Effect = Callable[[Draft, Mapping[str, Any], Transition, dict[str, str]], str | None]


def _user_guard(now: Facts, record: Mapping[str, Any]) -> str:
    """A user event: ``first`` when it aliased, ``linked`` to the device's own user, else
    ``other``. Whether to alias is the decider's question (R2, R3); the record says."""
    if record["alias"]:
        return "first"
    return "linked" if record["user_id"] == now.linked_user else "other"


def _undo_guard(now: Facts, record: Mapping[str, Any]) -> str | None:
    """An ``enqueue_failure``: ``was_<state>``, the state before the alias it undoes."""
    return None if now.undo is None else "was_" + now.undo[0]


def _import_guard(now: Facts, record: Mapping[str, Any]) -> str:
    return carried_guard(record["user_id"], linked=record["aliased"])


def _heal_guard(now: Facts, record: Mapping[str, Any]) -> str:
    user = record["user_id"]
    return carried_guard(user, linked=user == record["linked_user"])


def _drop_guard(now: Facts, record: Mapping[str, Any]) -> str | None:
    """An ``alias_dropped``: ``earlier`` for a device a logout rotated away, ``current`` for
    the device in force's own alias (``None``, no row, for an alias it does not have)."""
    if record["device_id"] != now.device_id:
        return "earlier"
    return "current" if record["user_id"] == now.linked_user else None


def _user_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> str | None:
    user = record["user_id"]
    if row.alias:
        now.undo = (now.state, now.user_id, now.linked_user)
        now.linked_user = user
        aliases[record["device_id"]] = user
        now.user_id = user
        return "sent"
    now.undo = None
    now.user_id = user
    return None


def _undo_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> str:
    assert now.undo is not None
    assert now.device_id is not None
    _, now.user_id, now.linked_user = now.undo
    now.undo = None
    if now.linked_user is None:
        aliases.pop(now.device_id, None)
    else:  # the device's earlier alias stands again
        aliases[now.device_id] = now.linked_user
    return "undone"


def _genesis_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> None:
    now.device_id, now.user_id, now.linked_user, now.undo = record["device_id"], None, None, None


def _import_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> str | None:
    device, user = record["device_id"], record["user_id"]
    now.device_id, now.user_id, now.linked_user, now.undo = device, user, None, None
    if row.guard != "with_user":
        return None
    now.linked_user = aliases[device] = user
    return "adopted"


def _heal_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> str | None:
    device, linked = record["device_id"], record["linked_user"]
    now.device_id, now.user_id, now.linked_user, now.undo = device, record["user_id"], linked, None
    if linked is None:
        return None
    aliases[device] = linked  # the alias it carries was sent before the heal
    return "carried"


def _logout_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> None:
    now.device_id, now.user_id, now.linked_user = record["new_device_id"], None, None
    now.undo = None


def _clear_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> None:
    now.user_id = now.undo = None


def _drop_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> str:
    """Never delivered: the device is free again (R9), and its alias is off the map."""
    dropped = record["device_id"]
    if aliases.get(dropped) == record["user_id"]:
        del aliases[dropped]
    if row.guard == "current":
        now.linked_user = None
    now.undo = None
    return "dropped"


def _consent_effect(
    now: Draft, record: Mapping[str, Any], row: Transition, aliases: dict[str, str]
) -> None:
    """The user's telemetry choice: the identity does not move (an ``enqueue_failure`` only
    ever follows its alias record, so none can follow this one)."""
    now.consent, now.consent_at = record["telemetry"], record["at"]
    now.undo = None


#: event -> (its guard, its effect). ``None``: the event has no guard (one row per state:
#: ``genesis``, ``clear``, ``logout``, ``consent``). A kind without an entry has no row anywhere.
RULES: Final[dict[str, tuple[Guard | None, Effect]]] = {
    "genesis": (None, _genesis_effect),
    "import": (_import_guard, _import_effect),
    **dict.fromkeys(USER_EVENTS, (_user_guard, _user_effect)),
    "enqueue_failure": (_undo_guard, _undo_effect),
    "clear": (None, _clear_effect),
    "logout": (None, _logout_effect),
    "heal": (_heal_guard, _heal_effect),
    "alias_dropped": (_drop_guard, _drop_effect),
    "consent": (None, _consent_effect),
}

#: What an unknown kind gets: no guard, and no row to take.
NO_RULE: Final[tuple[Guard | None, Effect]] = (None, _genesis_effect)


def guard_of(identity: Identity | Draft | None, record: Mapping[str, Any]) -> str | None:
    """The guard ``record`` takes from ``identity`` (``None``: the empty log).

    ``record`` needs its ``kind`` and the fields of that kind (no ``seq`` or
    ``h``): a record about to be written is judged as the one already read.
    """
    guard = RULES.get(record["kind"], NO_RULE)[0]
    return None if guard is None else guard(Draft() if identity is None else identity, record)


def transition_of(identity: Identity | Draft | None, record: Mapping[str, Any]) -> Transition:
    """The one row of the table ``record`` moves along from ``identity``.

    Raises :class:`TransitionError` (naming the state, the event and the
    guard) when the table has none.
    """
    return edge(identity, record, guard_of(identity, record))


def edge(
    identity: Identity | Draft | None, record: Mapping[str, Any], guard: str | None
) -> Transition:
    """The row of the table for ``record``'s kind with ``guard`` out of ``identity``'s state.

    Raises :class:`TransitionError` when the table has none.
    """
    row = _TABLE.get((INITIAL if identity is None else identity.state, record["kind"], guard))
    if row is None:
        raise transition_refused(identity, record, guard)
    return row


def step(
    identity: Identity | None, record: Mapping[str, Any], aliases: dict[str, str] | None = None
) -> tuple[Transition, Identity, str | None]:
    """What ``record`` does to ``identity``: ``(transition, identity after, alias mark)``.

    The one place a record's guard, its row of the table and its effect are
    worked out; :func:`~._fold.fold` is this step in a loop. ``aliases``
    (device -> user, the standing aliases) is updated in place when given.
    The alias mark says what the record did about an alias: ``sent``,
    ``undone``, ``adopted`` (an ``import`` of an aliased device),
    ``carried`` (a ``heal``), ``dropped`` or ``None``. Raises
    :class:`TransitionError` when the table has no row for the record;
    nothing is changed then.
    """
    now = Draft(identity)
    row = transition_of(now, record)
    mark = RULES[record["kind"]][1](now, record, row, {} if aliases is None else aliases)
    now.state = row.target
    after = now.identity(record["seq"], record["h"])
    assert after is not None
    return row, after, mark


def transition_refused(
    identity: Identity | Draft | None, record: Mapping[str, Any], guard: str | None
) -> TransitionError:
    """The error for a ``record`` that has no row from ``identity`` with ``guard``."""
    seq = record.get("seq")
    if seq is None:  # a record not written yet: it would be the next one
        seq = identity.seq + 1 if isinstance(identity, Identity) else 1
    state = INITIAL if identity is None else str(identity.state)
    return TransitionError(seq=seq, state=state, event=record["kind"], guard=guard)
