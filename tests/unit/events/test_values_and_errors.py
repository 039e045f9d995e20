"""Small pieces of the events floor the layers above build on: Frozen, TransitionError, and
record_fault's report of a record's keys."""

from __future__ import annotations

import pytest
from idstitch.events import TransitionError
from idstitch.events._frozen import Frozen, freeze
from idstitch.events._values import record_fault


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


def test_a_record_with_the_wrong_keys_names_the_missing_and_the_unexpected() -> None:
    """record_fault lists the keys a record lacks and those it should not have, sorted."""
    record = {"v": 1, "seq": 1, "at": "x", "kind": "clear", "pid": 1, "zz": 0, "aa": 0, "h": "0"}
    assert "record: missing ['device_id'], unexpected ['aa', 'zz']" == record_fault(record)
