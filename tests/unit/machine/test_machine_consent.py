"""The consent event: a self-loop on every state of the table, seen alike by the step, the
fold, the decider, the live machine and the snapshot's identity."""

from __future__ import annotations

from typing import Any

import pytest
from idstitch.events import TransitionError
from idstitch.machine import TRANSITIONS, Identity, State, fold, step
from idstitch.machine._decide import decide
from idstitch.machine._live import LiveMachine

AT = "2026-12-07T10:00:00.000000Z"

#: One identity in each state (an aliased one still able to undo its alias).
IDENTITIES = {
    State.ANONYMOUS: Identity(
        state=State.ANONYMOUS, device_id="d-1", user_id=None, linked_user=None, undo=None,
        seq=3, h="a" * 32,
    ),
    State.STAMPED: Identity(
        state=State.STAMPED, device_id="d-1", user_id="u-2", linked_user="u-1", undo=None,
        seq=3, h="a" * 32, consent="enabled", consent_at="2026-12-01T00:00:00.000000Z",
    ),
    State.ALIASED: Identity(
        state=State.ALIASED, device_id="d-1", user_id="u-1", linked_user="u-1",
        undo=(State.ANONYMOUS, None, None), seq=3, h="a" * 32,
    ),
    State.RESET: Identity(
        state=State.RESET, device_id="d-2", user_id=None, linked_user=None, undo=None,
        seq=3, h="a" * 32, consent="disabled", consent_at="2026-12-01T00:00:00.000000Z",
    ),
}  # fmt: skip


def _consent(identity: Identity, choice: str) -> dict[str, Any]:
    return {
        "seq": identity.seq + 1,
        "at": AT,
        "kind": "consent",
        "device_id": identity.device_id,
        "telemetry": choice,
        "pid": 7,
        "h": "b" * 32,
    }


def test_consent_is_a_self_loop_of_every_state_and_sends_nothing() -> None:
    """The table has one consent row per state, no guard, back to the same state, no alias."""
    rows = sorted((str(r.source), str(r.target), r.guard, r.alias) for r in TRANSITIONS
                  if r.event == "consent")  # fmt: skip
    assert sorted((str(s), str(s), None, False) for s in State) == rows


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("choice", ["enabled", "disabled"])
def test_a_consent_changes_only_the_consent(state: State, choice: str) -> None:
    """Step, fold and the live machine agree: the state, device, user and alias stay; consent
    and consent_at become the record's; an alias can no longer be undone after it."""
    before = IDENTITIES[state]
    record = _consent(before, choice)
    row, after, mark = step(before, record, aliases := {"d-1": "u-1"})
    folded = fold([record], before).identity
    live = LiveMachine(before)
    live_row = live.feed(record)
    expected = {
        **before.as_dict(),
        "undo": None,
        "seq": before.seq + 1,
        "h": "b" * 32,
        "consent": choice,
        "consent_at": AT,
    }
    assert (state, None, {"d-1": "u-1"}) == (row.target, mark, aliases)
    assert folded is not None
    assert live.identity is not None
    assert expected == after.as_dict() == folded.as_dict() == live.identity.as_dict()
    assert (row, str(state)) == (live_row, live.state)


def test_an_enqueue_failure_cannot_follow_a_consent() -> None:
    """An enqueue_failure undoes the alias of the record it follows: after a consent there is
    none to undo, so the table refuses it."""
    aliased = IDENTITIES[State.ALIASED]
    _, after, _ = step(aliased, _consent(aliased, "disabled"))
    with pytest.raises(TransitionError):
        decide(after, "enqueue_failure", runtime="persistent", pid=7)


@pytest.mark.parametrize("state", list(State))
def test_decide_records_a_new_choice_and_nothing_for_the_same_one(state: State) -> None:
    """decide(consent): a record naming the device in force and the choice, or None when the
    identity holds that choice already (enabling twice writes nothing)."""
    identity = IDENTITIES[state]
    decided = {
        choice: decide(identity, "consent", runtime="persistent", pid=7, telemetry=choice)
        for choice in ("enabled", "disabled")
    }
    expected = {
        choice: None
        if identity.consent == choice
        else ("consent", {"device_id": identity.device_id, "telemetry": choice, "pid": 7})
        for choice in ("enabled", "disabled")
    }
    actual = {c: None if d is None else (d.kind, d.fields) for c, d in decided.items()}
    assert expected == actual


def test_a_consent_cannot_start_a_log() -> None:
    """Only genesis, import and heal start a log: a consent on the empty log is refused."""
    with pytest.raises(TransitionError):
        decide(None, "consent", runtime="persistent", pid=7, telemetry="disabled")


def test_the_snapshot_identity_carries_the_consent_and_an_older_one_has_none() -> None:
    """as_dict/from_dict round-trip the consent; a version-1 snapshot's identity (no consent
    keys) reads as never recorded; a choice that is not one is no identity."""
    held = IDENTITIES[State.RESET]
    older = {k: v for k, v in held.as_dict().items() if k not in ("consent", "consent_at")}
    bad = {**held.as_dict(), "consent": "maybe"}
    unrecorded = Identity.from_dict(older)
    assert held == Identity.from_dict(held.as_dict())
    assert unrecorded is not None
    assert ((None, None), None) == (
        (unrecorded.consent, unrecorded.consent_at),
        Identity.from_dict(bad),
    )
