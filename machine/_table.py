"""Every identity transition, declared once, as data.

Two rules for this file, after h11's ``_state.py``:

* Everything that decides a transition lives here. The replay fold, the
  live ``transitions.Machine`` and the state diagram are all built from
  :data:`TRANSITIONS`; nothing else may move the state.
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
"""

from __future__ import annotations

from idstitch.events._kinds import KINDS
from idstitch.events._names import Names

TYPE_CHECKING = False  # typing itself is not imported at run time: start-up cost

if TYPE_CHECKING:
    from typing import ClassVar, Final

__all__ = [
    "EVENTS",
    "INITIAL",
    "TRANSITIONS",
    "USER_EVENTS",
    "USER_GUARDS",
    "State",
    "Transition",
    "carried_guard",
    "compiled_table",
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
