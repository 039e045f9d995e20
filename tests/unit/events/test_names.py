"""States and runtimes are named strings without ``enum``: they behave as StrEnum members did."""

from __future__ import annotations

import copy
import json
import pickle
from typing import ClassVar

import pytest
from idstitch.adapters.runtime import Runtime
from idstitch.events._names import Names
from idstitch.machine import State


def test_members_are_their_strings() -> None:
    """Each member equals, hashes and serialises as its value, which is its name in lower case."""
    assert ["anonymous", "stamped", "aliased", "reset"] == [s.value for s in State]
    assert [s.name.lower() for s in State] == [str(s) for s in State]
    assert State.ANONYMOUS == "anonymous"
    assert hash("reset") == hash(State.RESET)
    assert '["stamped","persistent"]' == json.dumps(
        [State.STAMPED, Runtime.PERSISTENT], separators=(",", ":")
    )
    assert str is type(State.ALIASED.value)
    assert "aliased" == f"{State.ALIASED}"


def test_members_are_found_by_value_and_iterated_in_order() -> None:
    """``State(value)`` is the member itself; iteration and ``len`` follow the declaration."""
    assert State.RESET is State("reset")
    assert Runtime.EPHEMERAL is Runtime("ephemeral")
    assert [Runtime.PERSISTENT, Runtime.EPHEMERAL] == list(Runtime)
    assert (4, 2) == (len(State), len(Runtime))
    assert all(isinstance(s, State) and isinstance(s, str) for s in State)
    assert not isinstance("reset", State)


@pytest.mark.parametrize("value", ["Reset", "", "persistent", None, 1])
def test_an_unknown_value_is_a_value_error(value: object) -> None:
    """A value that names no member raises ValueError, as an Enum does."""
    with pytest.raises(ValueError, match="is not a valid State"):
        State(value)  # type: ignore[arg-type]


def test_members_survive_copies_and_pickles() -> None:
    """Copying or pickling a member gives back the very member (identity checks keep working)."""
    for member in (*State, *Runtime):
        assert member is copy.deepcopy(member)
        assert member is pickle.loads(pickle.dumps(member))  # noqa: S301 - our own bytes
    assert "<State.STAMPED: 'stamped'>" == repr(State.STAMPED)


def test_a_member_names_itself() -> None:
    """``Runtime(Runtime.PERSISTENT)`` is the member, as with an Enum."""
    assert Runtime.PERSISTENT is Runtime(Runtime.PERSISTENT)


def test_only_upper_case_class_vars_are_members() -> None:
    """The members are the class's upper-case ``ClassVar`` declarations, in order: a
    lower-case ``ClassVar`` or an upper-case plain attribute is no member."""

    class Shade(Names):
        LIGHT: ClassVar[Shade]
        default: ClassVar[str] = "light"
        LIMIT: int = 2
        DARK: ClassVar[Shade]

    assert (["light", "dark"], 2) == ([shade.value for shade in Shade], len(Shade))
    with pytest.raises(ValueError, match="'default' is not a valid Shade"):
        Shade("default")
