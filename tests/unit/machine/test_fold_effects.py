"""What each record leaves behind in the fold: undo, the alias map, the user, and the errors.

Tests that `make mutate` asked for (docs/testing.md): each pins down one
effect or one field the rest of the suite folded past without looking.
"""

from __future__ import annotations

import pytest
from idstitch.events import TransitionError
from idstitch.machine import TRANSITIONS, Identity, State, Transition, replay
from idstitch.machine import _table as table
from idstitch.machine._decide import decide
from idstitch.store import MemoryLog

AT = "2026-01-01T00:00:00.000000Z"
GENESIS: tuple[str, dict[str, object]] = ("genesis", {"device_id": "d-1", "runtime": "persistent"})


def user_event(user: str, *, alias: bool, kind: str = "response") -> tuple[str, dict[str, object]]:
    """A user event of device d-1 that aliases (``alias``) or not."""
    fields = {"device_id": "d-1", "user_id": user, "runtime": "persistent", "pid": 1}
    return (kind, {**fields, "alias": alias})


def folded(*records: tuple[str, dict[str, object]]) -> tuple[Identity, dict[str, str]]:
    """The identity and the alias map ``records`` replay to (they must all fold)."""
    log = MemoryLog()
    for kind, fields in records:
        log.append(kind, fields, at=AT)
    result = replay(log.records())
    assert result.error is None
    assert result.identity is not None
    return result.identity, result.aliases


def mine(state: State, user: str | None, linked: str | None, seq: int) -> Identity:
    """Device d-1's identity with no undo and no consent (``h`` copied in by the caller)."""
    return Identity(
        state=state, device_id="d-1", user_id=user, linked_user=linked, undo=None, seq=seq, h=""
    )


@pytest.mark.parametrize(
    ("later", "state", "user"),
    [
        (user_event("u", alias=False), State.ALIASED, "u"),  # linked: the device's own user
        (user_event("v", alias=False), State.STAMPED, "v"),  # stamp: another user
    ],
    ids=["linked", "stamp"],
)
def test_a_user_event_after_an_alias_ends_the_chance_to_undo_it(
    later: tuple[str, dict[str, object]], state: State, user: str
) -> None:
    """After alias then a linked or stamp event, undo is gone (identity and snapshot form), and
    an enqueue_failure then has no row."""
    identity, aliases = folded(GENESIS, user_event("u", alias=True), later)
    expected = mine(state, user, "u", 3)
    expected.h = identity.h
    assert (expected.as_dict(), {"d-1": "u"}) == (identity.as_dict(), aliases)
    with pytest.raises(TransitionError) as refused:
        decide(identity, "enqueue_failure", runtime="persistent", pid=1)
    assert (4, "enqueue_failure", None) == (
        refused.value.seq,
        refused.value.event,
        refused.value.guard,
    )


def test_an_enqueue_failure_takes_its_alias_off_the_map() -> None:
    """The alias an enqueue_failure undoes no longer stands: the map is empty again (R9)."""
    identity, aliases = folded(
        GENESIS,
        user_event("u", alias=True),
        ("enqueue_failure", {"device_id": "d-1", "user_id": "u", "pid": 1}),
    )
    expected = mine(State.ANONYMOUS, None, None, 3)
    expected.h = identity.h
    assert (expected.as_dict(), {}) == (identity.as_dict(), aliases)


@pytest.mark.parametrize(
    ("aliased", "state", "linked", "aliases"),
    [
        (True, State.ALIASED, "u", {"d-1": "u"}),
        (False, State.STAMPED, None, {}),
    ],
    ids=["aliased", "not-aliased"],
)
def test_an_import_puts_on_the_map_only_the_alias_it_adopts(
    aliased: bool, state: State, linked: str | None, aliases: dict[str, str]
) -> None:
    """An aliased import adopts the device's alias (on the map, and linked); an unaliased one
    adopts the user only."""
    identity, found = folded(
        ("import", {"device_id": "d-1", "user_id": "u", "aliased": aliased}),
    )
    expected = mine(state, "u", linked, 1)
    expected.h = identity.h
    assert (expected.as_dict(), aliases) == (identity.as_dict(), found)


def test_a_replay_result_names_the_user_and_ids_of_the_last_record() -> None:
    """ReplayResult's user_id, device_id and distinct_id follow the log: aliased, then stamped
    another user, then logged out."""
    log = MemoryLog()
    seen = []
    for kind, fields in (
        GENESIS,
        user_event("u", alias=True),
        user_event("v", alias=False, kind="login"),
        ("logout", {"device_id": "d-1", "new_device_id": "d-2", "pid": 1}),
    ):
        log.append(kind, fields, at=AT)
        result = replay(log.records())
        seen.append((result.state, result.user_id, result.device_id, result.distinct_id))
    assert [
        (State.ANONYMOUS, None, "d-1", "d-1"),
        (State.ALIASED, "u", "d-1", "u"),
        (State.STAMPED, "v", "d-1", "v"),
        (State.RESET, None, "d-2", "d-2"),
    ] == seen


def row(source: str, event: str, guard: str | None) -> Transition:
    """The table's row for ``source --event [guard]-->``."""
    (found,) = [t for t in TRANSITIONS if (t.source, t.event, t.guard) == (source, event, guard)]
    return found


def test_a_decision_carries_the_row_it_moves_along() -> None:
    """Decision.transition is the table's very row for the record decided, guard included."""
    fresh = mine(State.ANONYMOUS, None, None, 3)
    aliased = mine(State.ALIASED, "u", "u", 3)
    cases = [
        (decide(None, "genesis", runtime="persistent", pid=1, device_id="d-1"), "initial",
         "genesis", None),
        (decide(fresh, "login", runtime="persistent", pid=1, user_id="u"), "anonymous", "login",
         "first"),
        (decide(fresh, "login", runtime="ephemeral", pid=1, user_id="u"), "anonymous", "login",
         "other"),
        (decide(aliased, "clear", runtime="persistent", pid=1), "aliased", "clear", None),
        (decide(aliased, "logout", runtime="persistent", pid=1, device_id="d-2"), "aliased",
         "logout", None),
    ]  # fmt: skip
    for decision, source, event, guard in cases:
        assert decision is not None
        assert row(source, event, guard) is decision.transition


@pytest.mark.parametrize(
    ("identity", "event", "seq"),
    [
        (None, "logout", 1),  # the empty log: the refused record would be the first
        (mine(State.ANONYMOUS, None, None, 3), "genesis", 4),  # the next after seq 3
        (mine(State.STAMPED, "u", None, 41), "import", 42),
    ],
)
def test_a_refused_decision_names_the_seq_the_record_would_have(
    identity: Identity | None, event: str, seq: int
) -> None:
    """The TransitionError of a decision names the record's would-be seq, its state and event."""
    with pytest.raises(TransitionError) as refused:
        decide(identity, event, runtime="persistent", pid=1, device_id="d-9", user_id="u")
    state = "initial" if identity is None else identity.state.value
    assert (seq, state, event) == (refused.value.seq, refused.value.state, refused.value.event)


def test_transitions_are_equal_by_their_edge_not_their_reason() -> None:
    """Two rows with the same source, event, guard, target and alias are equal and hash alike,
    whatever their reason; any other field, or another type, makes them differ."""
    first = Transition("anonymous", "login", "first", State.ALIASED, True, "R2")
    same = Transition("anonymous", "login", "first", State.ALIASED, True, "another reason")
    others = [
        Transition("stamped", "login", "first", State.ALIASED, True, "R2"),
        Transition("anonymous", "response", "first", State.ALIASED, True, "R2"),
        Transition("anonymous", "login", "other", State.ALIASED, True, "R2"),
        Transition("anonymous", "login", "first", State.STAMPED, True, "R2"),
        Transition("anonymous", "login", "first", State.ALIASED, False, "R2"),
    ]
    assert (True, 1) == (first == same, len({first, same}))
    assert [False] * 6 == [first == other for other in [*others, first._key()]]
    assert 6 == len({first, *others})


def test_a_table_declaring_an_edge_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling a table where one (source, event, guard) has two rows raises, naming it."""
    twice = Transition("aliased", "clear", None, State.ANONYMOUS, False, "declared again")
    monkeypatch.setattr(table, "TRANSITIONS", (*TRANSITIONS, twice))
    with pytest.raises(AssertionError, match=r"declared twice: \('aliased', 'clear', None\)"):
        table.compiled_table()


def test_a_fold_reports_a_record_of_an_unknown_kind_it_starts_with() -> None:
    """fold never raises for a bad record: an unknown kind, even first, is a TransitionError
    in the result, from the empty log."""
    result = replay([{"kind": "mystery", "seq": 1, "h": "0" * 32}])
    assert isinstance(result.error, TransitionError)
    assert (None, 1, "initial", "mystery", None) == (
        result.identity,
        result.error.seq,
        result.error.state,
        result.error.event,
        result.error.guard,
    )


LOGOUT = ("logout", {"device_id": "d-1", "new_device_id": "d-2", "pid": 1})


def test_an_alias_undone_after_a_logout_goes_back_to_reset() -> None:
    """R9 after R7: an enqueue_failure of the first alias of a rotated device restores reset,
    with no user and nothing on the map for the new device."""
    alias = user_event("u", alias=True)
    alias[1]["device_id"] = "d-2"
    failure = ("enqueue_failure", {"device_id": "d-2", "user_id": "u", "pid": 1})
    identity, aliases = folded(GENESIS, LOGOUT, alias, failure)
    expected = mine(State.RESET, None, None, 4)
    expected.device_id, expected.h = "d-2", identity.h
    assert (expected.as_dict(), {}) == (identity.as_dict(), aliases)


@pytest.mark.parametrize(
    "before",
    [
        [],
        [user_event("u", alias=False)],
        [user_event("u", alias=True)],
        [LOGOUT],
    ],
    ids=["anonymous", "stamped", "aliased", "reset"],
)
def test_a_clear_leaves_every_state_anonymous_with_no_user(
    before: list[tuple[str, dict[str, object]]],
) -> None:
    """R8: clear forgets the user (the device and its link are kept) from every state."""
    device = "d-2" if before == [LOGOUT] else "d-1"
    clear = ("clear", {"device_id": device, "pid": 1})
    identity, _ = folded(GENESIS, *before, clear)
    linked = "u" if before == [user_event("u", alias=True)] else None
    assert (State.ANONYMOUS, None, linked, device) == (
        identity.state,
        identity.user_id,
        identity.linked_user,
        identity.device_id,
    )


def test_equal_identities_are_one_set_member() -> None:
    """An identity is a value: equal ones hash alike (a set holds one); one of another user, or
    anything but an identity, is not equal to it."""
    first, _ = folded(GENESIS, user_event("u", alias=True))
    again, _ = folded(GENESIS, user_event("u", alias=True))
    other, _ = folded(GENESIS, user_event("v", alias=True))
    assert (True, False, False) == (first == again, first == other, first == first.as_dict())
    assert {first, other} == {first, again, other}
