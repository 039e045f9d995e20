"""Which characters an id may hold (R13): ids that show nothing, and lone surrogates, are
refused, for user ids and device ids alike; the characters around them are not."""

from __future__ import annotations

import pytest
from idstitch.events import IllegalUserIdError, check_device_id, check_user_id

#: Ids made only of format characters (Cf) and spaces: printed, they show nothing.
INVISIBLE = ["\u200b", "\ufeff", " \u200b\u200d ", "\u2060\u00a0\u200c"]


@pytest.mark.parametrize("user_id", INVISIBLE)
def test_an_invisible_user_id_is_refused_as_invisible(user_id: str) -> None:
    """A user id of only zero-width characters and spaces is refused, saying it is invisible."""
    with pytest.raises(IllegalUserIdError) as caught:
        check_user_id(user_id)
    expected = "a user id must not be made only of invisible characters (such as U+200B)"
    assert (user_id, expected) == (caught.value.user_id, caught.value.reason)


@pytest.mark.parametrize("device_id", INVISIBLE)
def test_an_invisible_device_id_is_refused(device_id: str) -> None:
    """A device id of only zero-width characters and spaces is unusable: ValueError says why."""
    with pytest.raises(ValueError, match=r"device id") as caught:
        check_device_id(device_id)
    expected = "a device id must not be made only of invisible characters (such as U+200B)"
    assert expected == str(caught.value)


#: The ends of the surrogate range (U+D800 to U+DFFF), which no UTF-8 text can hold.
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
#: The characters just outside it (an unassigned and a private-use one): ordinary text.
BESIDE_SURROGATES = ["\ud7ff", "\ue000"]


@pytest.mark.parametrize("char", SURROGATES)
def test_a_lone_surrogate_is_refused_at_either_end_of_the_range(char: str) -> None:
    """An id holding a lone surrogate (any of U+D800 to U+DFFF) is refused as invalid text."""
    user_id = "user-" + char
    with pytest.raises(IllegalUserIdError) as caught:
        check_user_id(user_id)
    with pytest.raises(ValueError, match=r"device id") as device_caught:
        check_device_id(user_id)
    expected = (
        "a user id must be valid Unicode text (it holds a lone surrogate)",
        "a device id must be valid Unicode text (it holds a lone surrogate)",
    )
    assert expected == (caught.value.reason, str(device_caught.value))


@pytest.mark.parametrize("char", BESIDE_SURROGATES)
def test_the_characters_beside_the_surrogates_are_accepted(char: str) -> None:
    """U+D7FF and U+E000, the neighbours of the surrogate range, are ordinary characters."""
    user_id = "user-" + char
    assert (user_id, user_id) == (check_user_id(user_id), check_device_id(user_id))
