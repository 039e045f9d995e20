"""The live ``transitions.Machine``, built from :data:`TRANSITIONS` and nothing else.

The identity service never drives it: it checks each decided edge with
one lookup in the same table compiled to a dict
(:func:`~._decide.check_decision`), as replay does, and so never imports
``transitions`` (30 ms of a CLI's start). The machine serves the tests,
which check that it and the compiled table agree on every (state, event,
guard), and the benchmark's baseline. ``auto_transitions=False`` leaves no
``to_<state>()`` back doors, and invalid triggers are errors, never a
silent ``False``.
"""

from __future__ import annotations

from idstitch.events._errors import TransitionError

from ._table import INITIAL, TRANSITIONS, State

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable

    from transitions import EventData

__all__ = ["LiveMachine"]


def _guard_is(guard: str | None) -> Callable[[EventData], bool]:
    def check(event: EventData) -> bool:
        return event.kwargs.get("guard") == guard

    check.__name__ = f"guard_is_{guard}"
    return check


class LiveMachine:
    """The identity state machine as a ``transitions`` model.

    ``fire(event, guard)`` moves along the one row of the table that
    matches, and returns the new state; anything else raises
    :class:`TransitionError` naming the state and the event.
    """

    state: str

    def __init__(self, initial: State | str = INITIAL) -> None:
        from transitions import Machine

        self._machine = Machine(
            model=self,
            states=[INITIAL, *(state.value for state in State)],
            initial=str(initial),
            auto_transitions=False,
            send_event=True,
            model_attribute="state",
        )
        for row in TRANSITIONS:
            # Plain strings: transitions would name an Enum state by its member name.
            self._machine.add_transition(
                row.event, str(row.source), row.target.value, conditions=[_guard_is(row.guard)]
            )

    def reset_to(self, state: State | str) -> None:
        """Put the machine in ``state`` (the identity may have moved by folding records)."""
        self._machine.set_state(str(state), model=self)

    def fire(self, event: str, guard: str | None, *, seq: int = 0) -> State:
        """Take the ``event [guard]`` edge from the current state; return the state reached."""
        from transitions import MachineError

        before = self.state
        try:
            moved = self._machine.events[event].trigger(self, guard=guard)
        except (MachineError, KeyError):
            moved = False
        if not moved:
            raise TransitionError(seq=seq, state=before, event=event, guard=guard)
        return State(self.state)
