"""What the decider writes for each event: the record's fields and the row it moves along.

Tests that `make mutate` asked for (docs/testing.md): the openings of a log,
the defaults of ``decide``, and the events that change nothing.
"""

from __future__ import annotations

import pytest
from idstitch.machine import TRANSITIONS, Identity, State, Transition
from idstitch.machine._decide import decide, may_alias_now


def mine(state: State, user: str | None = None, linked: str | None = None) -> Identity:
    """Device d-1's identity at seq 3."""
    return Identity(
        state=state, device_id="d-1", user_id=user, linked_user=linked, undo=None, seq=3, h="a" * 32
    )


def row(source: str, event: str, guard: str | None) -> Transition:
    """The table's row for ``source --event [guard]-->``."""
    (found,) = [t for t in TRANSITIONS if (t.source, t.event, t.guard) == (source, event, guard)]
    return found


@pytest.mark.parametrize(
    ("aliased", "fields", "guard"),
    [
        (None, {"device_id": "d-1", "user_id": "u", "aliased": False}, "unlinked_user"),
        (True, {"device_id": "d-1", "user_id": "u", "aliased": True}, "with_user"),
    ],
    ids=["default-not-aliased", "aliased"],
)
def test_an_import_decision_adopts_the_device_and_user_it_is_given(
    aliased: bool | None, fields: dict[str, object], guard: str
) -> None:
    """decide(None, "import") records the device, the user and whether it was aliased (not, by
    default), along the import row of that guard."""
    if aliased is None:
        decision = decide(None, "import", runtime="persistent", pid=1, device_id="d-1", user_id="u")
    else:
        decision = decide(
            None, "import", runtime="persistent", pid=1, device_id="d-1", user_id="u", aliased=True
        )
    assert decision is not None
    assert ("import", fields) == (decision.kind, decision.fields)
    assert row("initial", "import", guard) is decision.transition


def test_a_heal_decision_carries_what_it_is_given() -> None:
    """decide(None, "heal") records the device, user, link, the kept log's name and the pid."""
    decision = decide(
        None,
        "heal",
        runtime="persistent",
        pid=7,
        device_id="d-1",
        user_id="u",
        linked_user="u",
        kept="identity.jsonl.damaged-1",
    )
    assert decision is not None
    carried = {
        "device_id": "d-1",
        "user_id": "u",
        "linked_user": "u",
        "kept": "identity.jsonl.damaged-1",
        "pid": 7,
    }
    assert ("heal", carried) == (decision.kind, decision.fields)
    assert row("initial", "heal", "with_user") is decision.transition


def test_a_user_event_aliases_a_fresh_persistent_device_by_default() -> None:
    """With no may_alias given, a persistent never-aliased device aliases on its first user."""
    fresh = mine(State.ANONYMOUS)
    decision = decide(fresh, "login", runtime="persistent", pid=1, user_id="u")
    assert decision is not None
    assert (True, True) == (may_alias_now(fresh, "persistent"), decision.alias)
    assert (False, False) == (
        may_alias_now(fresh, "persistent", may_alias=False),
        may_alias_now(mine(State.STAMPED, "u", "v"), "persistent"),
    )


@pytest.mark.parametrize(
    ("identity", "source"),
    [
        (mine(State.STAMPED, "u"), "stamped"),
        (mine(State.ALIASED, "u", "u"), "aliased"),
        (mine(State.RESET), "reset"),
    ],
    ids=["stamped", "aliased", "reset"],
)
def test_a_clear_is_recorded_from_every_state_but_anonymous(
    identity: Identity, source: str
) -> None:
    """clear forgets a user, or brings a reset device back to anonymous: a record each time."""
    decision = decide(identity, "clear", runtime="persistent", pid=1)
    assert decision is not None
    assert ({"device_id": "d-1", "pid": 1}, row(source, "clear", None)) == (
        decision.fields,
        decision.transition,
    )


def test_a_clear_of_an_anonymous_device_changes_nothing() -> None:
    """Nothing to forget: no record."""
    assert decide(mine(State.ANONYMOUS), "clear", runtime="persistent", pid=1) is None
