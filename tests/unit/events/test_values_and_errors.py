"""Small pieces of the events floor the layers above build on: Frozen, TransitionError,
IllegalUserIdError's message, and record_fault's report of a record's keys."""

from __future__ import annotations

import pytest
from idstitch.events import IllegalUserIdError, TransitionError, check_user_id
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


def test_a_frozen_class_must_declare_its_fields() -> None:
    """A Frozen subclass without __slots__ is refused when it is declared, naming the class."""
    with pytest.raises(TypeError) as caught:

        class Loose(Frozen):
            pass

    assert "Loose must declare its fields as __slots__" == str(caught.value)


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


def _refusal_message(user_id: object) -> str:
    """The message of the IllegalUserIdError that check_user_id raises for ``user_id``."""
    with pytest.raises(IllegalUserIdError) as caught:
        check_user_id(user_id)
    return str(caught.value)


def test_an_integer_too_long_to_write_out_is_shown_by_its_size() -> None:
    """An integer Python refuses to write in decimal (past 4300 digits) is refused as a user
    id all the same, its message showing its size in bits instead of its digits."""
    huge = 1 << 20_000  # 6021 decimal digits
    expected = (
        "illegal user id <an integer of 20001 bits>: a user id must be a string, not int "
        "(rule R13); pass the authenticated user's stable id (for example their UUID)"
    )
    assert expected == _refusal_message(huge)


@pytest.mark.parametrize(
    ("user_id", "shown"),
    [
        ("a" * 56 + "\n", "'" + "a" * 56 + "\\n'"),
        ("a" * 57 + "\n", "'" + "a" * 56 + "..."),
        ("a" * 201, "'" + "a" * 56 + "..."),
    ],
    ids=["repr-of-60-whole", "repr-of-61-cut", "long-id-cut"],
)
def test_a_long_id_is_cut_to_60_characters_in_the_message(user_id: str, shown: str) -> None:
    """The message shows an id's repr whole up to 60 characters; a longer one is cut to its
    first 57 characters and "...", so that the message stays one readable line."""
    expected = (
        f"illegal user id {shown}: a reason (rule R13); "
        "pass the authenticated user's stable id (for example their UUID)"
    )
    assert expected == str(IllegalUserIdError(user_id, "a reason"))
