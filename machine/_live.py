"""The live ``transitions.Machine``, built from :data:`TRANSITIONS` and driven by the step.

The identity service never drives it: each record it decides and folds
goes through :func:`~._table.step`, whose row comes from the same table
compiled to a dict, so the service never imports ``transitions`` (30 ms
of a CLI's start). The machine serves the tests, which check that it and
the compiled table agree on every (state, event, guard), and the
benchmark's baseline. It moves only by :meth:`LiveMachine.feed`: the
record's guard (:func:`~._table.guard_of`) picks the trigger's edge, and
the step works out the rest of the identity. ``auto_transitions=False``
leaves no ``to_<state>()`` back doors, there is no other way to set its
state, and invalid triggers are errors, never a silent ``False``.
"""

from __future__ import annotations

from idstitch.events._errors import TransitionError

from ._table import INITIAL, TRANSITIONS, State, guard_of, step

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from transitions import EventData

    from ._table import Identity, Transition

__all__ = ["LiveMachine"]


def _guard_is(guard: str | None) -> Callable[[EventData], bool]:
    def check(event: EventData) -> bool:
        return event.kwargs.get("guard") == guard

    check.__name__ = f"guard_is_{guard}"
    return check


class _Model:
    """The ``transitions`` model: it gets the machine's ``trigger`` and one method per event,
    so that none of them is a way into :class:`LiveMachine` besides :meth:`~LiveMachine.feed`."""

    state: str


class LiveMachine:
    """The identity state machine as a ``transitions`` machine, fed one record at a time.

    ``identity`` is where it starts (``None``: the empty log); :attr:`identity`
    and :attr:`aliases` are the step's after each :meth:`feed`, and
    :attr:`state` is the ``transitions`` model's own, which a test compares.
    """

    def __init__(self, identity: Identity | None = None) -> None:
        from transitions import Machine

        self.identity = identity
        self.aliases: dict[str, str] = {}
        self._model = _Model()
        self._machine = Machine(
            model=self._model,
            states=[INITIAL, *(state.value for state in State)],
            initial=INITIAL if identity is None else identity.state.value,
            auto_transitions=False,
            send_event=True,
            model_attribute="state",
        )
        for row in TRANSITIONS:
            # Plain strings: transitions would name an Enum state by its member name.
            self._machine.add_transition(
                row.event, str(row.source), row.target.value, conditions=[_guard_is(row.guard)]
            )

    def feed(self, record: Mapping[str, Any]) -> Transition:
        """Fire ``record``'s trigger with its guard, then step the identity; the row taken.

        Raises :class:`TransitionError` naming the state and the event when
        the machine has no such edge; nothing moves then.
        """
        self._fire(record["kind"], guard_of(self.identity, record), seq=record["seq"])
        row, self.identity, _ = step(self.identity, record, self.aliases)
        if row.target != self.state:
            raise AssertionError(f"the live machine reached {self.state}, the table says {row}")
        return row

    @property
    def state(self) -> str:
        """The state the ``transitions`` machine is in."""
        return self._model.state

    def _fire(self, event: str, guard: str | None, *, seq: int = 0) -> State:
        """Take the ``event [guard]`` edge from the current state; return the state reached."""
        from transitions import MachineError

        before = self.state
        try:
            moved = self._machine.events[event].trigger(self._model, guard=guard)
        except (MachineError, KeyError):
            moved = False
        if not moved:
            raise TransitionError(seq=seq, state=before, event=event, guard=guard)
        return State(self.state)
