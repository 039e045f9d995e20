"""Small values of the events floor that the layers above build on: Frozen and TransitionError."""

from __future__ import annotations

import pytest
from idstitch.events import TransitionError
from idstitch.events._frozen import Frozen, freeze


class Point(Frozen):
    """A two-field frozen value, as the audit's reports are."""

    __slots__ = ("x", "y")
    x: int
    y: int

    def __init__(self, x: int, y: int) -> None:
        freeze(self, locals())


def test_a_frozen_value_equals_only_its_own_kind() -> None:
    """Equal fields make equal values (hashing alike); another type is simply not equal."""
    assert (True, False, False, True, 1) == (
        Point(1, 2) == Point(1, 2),
        Point(1, 2) == Point(2, 1),
        Point(1, 2) == (1, 2),
        Point(1, 2) != (1, 2),
        len({Point(1, 2), Point(1, 2)}),
    )


def test_a_frozen_value_cannot_change() -> None:
    """Setting or deleting a field raises AttributeError naming it."""
    point = Point(1, 2)
    with pytest.raises(AttributeError, match="Point is frozen: cannot set x"):
        point.x = 3
    with pytest.raises(AttributeError, match="Point is frozen: cannot delete y"):
        del point.y


@pytest.mark.parametrize(
    ("guard", "message"),
    [
        ("was_reset", "record seq 4: enqueue_failure [was_reset] is not a transition from state "),
        (None, "record seq 4: enqueue_failure is not a transition from state "),
    ],
)
def test_a_transition_error_names_the_seq_event_guard_and_state(
    guard: str | None, message: str
) -> None:
    """The message names the record's seq, the event with its guard (when it has one) and the
    state; the same facts are attributes."""
    error = TransitionError(seq=4, state="stamped", event="enqueue_failure", guard=guard)
    assert (message + "stamped", 4, "stamped", "enqueue_failure", guard) == (
        str(error),
        error.seq,
        error.state,
        error.event,
        error.guard,
    )
