"""The transition table, the live transitions machine, the fold and the decisions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from idstitch.events import LogDamagedError, TransitionError
from idstitch.machine import (
    EVENTS,
    INITIAL,
    TRANSITIONS,
    USER_EVENTS,
    Identity,
    ReplayResult,
    State,
    fold,
    mermaid,
    replay,
)
from idstitch.machine._decide import check_decision, decide
from idstitch.machine._diagram import edge_label
from idstitch.machine._live import LiveMachine
from idstitch.machine._table import compiled_table
from idstitch.store import MemoryLog
from support.helpers import drive_life
from support.strategies import LifeStep, RecordSpec, life_steps, log_openings

AT = "2026-11-27T17:00:00.000000Z"
ALL_GUARDS = sorted({row.guard for row in TRANSITIONS if row.guard is not None})
SOURCES = [INITIAL, *(state.value for state in State)]


def test_every_row_is_declared_once() -> None:
    """The table has one row per (source, event, guard): the compiled dict loses nothing."""
    assert len(TRANSITIONS) == len(compiled_table())


@pytest.mark.parametrize(("source", "event"), list(itertools.product(SOURCES, EVENTS)))
def test_the_live_machine_and_the_compiled_table_agree(source: str, event: str) -> None:
    """For every (state, event, guard) the live machine goes where the dict says, or refuses."""
    table = compiled_table()
    start = None if source == INITIAL else identity(State(source), user="u", linked="u")
    for guard in [None, *ALL_GUARDS]:
        row = table.get((source, event, guard))
        live = LiveMachine(start)
        if row is None:
            with pytest.raises(TransitionError) as caught:
                live._fire(event, guard, seq=7)
            assert (7, source, event, guard) == (
                caught.value.seq,
                caught.value.state,
                caught.value.event,
                caught.value.guard,
            )
            assert source == live.state
        else:
            assert row.target == live._fire(event, guard)


def test_the_live_machine_has_no_back_doors() -> None:
    """auto_transitions=False: no to_<state>() methods that would bypass the table, on the
    live machine or its transitions model, and no trigger but the table's events."""
    live = LiveMachine()
    assert [] == [name for name in [*dir(live), *dir(live._model)] if name.startswith("to_")]
    assert sorted({row.event for row in TRANSITIONS}) == sorted(live._machine.events)


def test_user_events_alias_only_on_the_first_guard() -> None:
    """Only `first` edges send $create_alias, and every state has one for both user events."""
    aliasing = {(row.source, row.event) for row in TRANSITIONS if row.alias}
    assert {row.guard for row in TRANSITIONS if row.alias} == {"first"}
    assert aliasing == set(itertools.product(list(State), USER_EVENTS))


def test_the_diagram_shows_every_transition_of_the_table() -> None:
    """The mermaid diagram has an edge for every row, read from the table itself."""
    diagram = mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    edges = diagram.splitlines()[1:]
    for row in TRANSITIONS:
        source = "[*]" if row.source == INITIAL else row.source
        prefix = f"    {source} --> {row.target}: "
        matching = [edge for edge in edges if edge.startswith(prefix)]
        assert 1 == len(matching), row
        assert edge_label(row) in matching[0].removeprefix(prefix).split("<br/>")


def identity(state: State, *, user: str | None = None, linked: str | None = None) -> Identity:
    """A hand-made identity on device d-1 at seq 3."""
    return Identity(
        state=state, device_id="d-1", user_id=user, linked_user=linked, undo=None, seq=3, h="a" * 32
    )


def test_decide_returns_none_for_the_steady_state() -> None:
    """The same user again changes nothing: no record, in any runtime."""
    for runtime in ("persistent", "ephemeral"):
        aliased = identity(State.ALIASED, user="u", linked="u")
        stamped = identity(State.STAMPED, user="u", linked="v")
        for current in (aliased, stamped):
            assert decide(current, "response", runtime=runtime, pid=1, user_id="u") is None


def test_decide_names_the_alias_stamp_and_rotation() -> None:
    """A decision says what it does: alias (first identity, persistent), stamp, rotate."""
    fresh = identity(State.ANONYMOUS)
    first = decide(fresh, "login", runtime="persistent", pid=9, user_id="u")
    assert first is not None
    assert (True, True, False) == (first.alias, first.stamp, first.rotate)
    assert {
        "device_id": "d-1",
        "user_id": "u",
        "runtime": "persistent",
        "pid": 9,
        "alias": True,
    } == first.fields
    ci = decide(fresh, "login", runtime="ephemeral", pid=9, user_id="u")
    assert ci is not None
    assert (False, True, State.STAMPED) == (ci.alias, ci.stamp, ci.transition.target)
    out = decide(fresh, "logout", runtime="persistent", pid=9, device_id="d-2")
    assert out is not None
    assert (True, {"device_id": "d-1", "new_device_id": "d-2", "pid": 9}) == (
        out.rotate,
        out.fields,
    )


def test_decide_refuses_impossible_events() -> None:
    """enqueue_failure with no alias to undo, or a second genesis, is a TransitionError."""
    with pytest.raises(TransitionError, match="enqueue_failure is not a transition"):
        decide(
            identity(State.ALIASED, user="u", linked="u"),
            "enqueue_failure",
            runtime="persistent",
            pid=1,
        )
    with pytest.raises(TransitionError, match="genesis is not a transition from state anonymous"):
        decide(identity(State.ANONYMOUS), "genesis", runtime="persistent", pid=1, device_id="x")
    with pytest.raises(TransitionError, match="logout is not a transition from state initial"):
        decide(None, "logout", runtime="persistent", pid=1, device_id="x")


def test_a_decision_is_checked_against_the_table_from_the_state_it_is_applied_to() -> None:
    """check_decision passes the edge decided for this state, and refuses it from a state the
    identity has left: no such edge there (TransitionError), or another one (AssertionError)."""
    anonymous, stamped = identity(State.ANONYMOUS), identity(State.STAMPED, user="u")
    alias = decide(anonymous, "response", runtime="persistent", pid=1, user_id="v")
    undo = decide(
        Identity(
            state=State.ALIASED,
            device_id="d-1",
            user_id="v",
            linked_user="v",
            undo=(State.ANONYMOUS, None, None),
            seq=4,
            h="b" * 32,
        ),
        "enqueue_failure",
        runtime="persistent",
        pid=1,
    )
    genesis = decide(None, "genesis", runtime="persistent", pid=1, device_id="d-1")
    assert alias is not None
    assert undo is not None
    assert genesis is not None
    check_decision(anonymous, alias)
    check_decision(None, genesis)
    with pytest.raises(AssertionError, match=r"from this state the table says <stamped --"):
        check_decision(stamped, alias)
    with pytest.raises(
        TransitionError, match=r"\[was_anonymous\] is not a transition from state st"
    ):
        check_decision(stamped, undo)
    with pytest.raises(TransitionError, match="genesis is not a transition from state anonymous"):
        check_decision(anonymous, genesis)


def build(records: list[tuple[str, dict[str, object]]]) -> MemoryLog:
    """A memory log holding ``records``."""
    log = MemoryLog()
    for kind, fields in records:
        log.append(kind, fields, at=AT)
    return log


def test_replay_of_an_empty_log_has_no_identity() -> None:
    """Nothing to fold: every field is None and last_seq is 0."""
    result = replay(MemoryLog().records())
    assert (None, None, None, None, 0, None) == (
        result.state,
        result.device_id,
        result.user_id,
        result.distinct_id,
        result.last_seq,
        result.error,
    )


def test_replay_folds_aliases_undo_and_rotation() -> None:
    """Replay tracks the alias map: an enqueue failure undoes its alias, logout rotates."""
    log = build(
        [
            ("genesis", {"device_id": "d-1", "runtime": "persistent"}),
            (
                "response",
                {
                    "device_id": "d-1",
                    "user_id": "u",
                    "runtime": "persistent",
                    "pid": 1,
                    "alias": True,
                },
            ),
            ("enqueue_failure", {"device_id": "d-1", "user_id": "u", "pid": 1}),
            (
                "login",
                {
                    "device_id": "d-1",
                    "user_id": "u",
                    "runtime": "persistent",
                    "pid": 1,
                    "alias": True,
                },
            ),
            ("logout", {"device_id": "d-1", "new_device_id": "d-2", "pid": 1}),
            (
                "login",
                {
                    "device_id": "d-2",
                    "user_id": "v",
                    "runtime": "ephemeral",
                    "pid": 2,
                    "alias": False,
                },
            ),
        ]
    )
    result = replay(log.records())
    assert (None, State.STAMPED, "d-2", "v", 6) == (
        result.error,
        result.state,
        result.device_id,
        result.distinct_id,
        result.last_seq,
    )
    assert {"d-1": "u"} == result.aliases


def _aliased(user: str) -> tuple[str, dict[str, object]]:
    fields = {"device_id": "d-1", "user_id": user, "runtime": "persistent", "pid": 1}
    return ("response", {**fields, "alias": True})


def test_an_undone_realias_leaves_the_devices_first_alias_standing() -> None:
    """A hand-made second alias of one device (an L4 breach), then undone: the first one stands."""
    log = build(
        [
            ("genesis", {"device_id": "d-1", "runtime": "persistent"}),
            _aliased("user-a"),
            ("clear", {"device_id": "d-1", "pid": 1}),
            _aliased("user-b"),
            ("enqueue_failure", {"device_id": "d-1", "user_id": "user-b", "pid": 1}),
        ]
    )
    result = replay(log.records())
    assert result.identity is not None
    assert (None, {"d-1": "user-a"}, "user-a") == (
        result.error,
        result.aliases,
        result.identity.linked_user,
    )


def test_replay_stops_at_an_impossible_transition_and_keeps_the_last_good_state() -> None:
    """A hand-made enqueue_failure with no alias before it is reported, never folded."""
    log = build(
        [
            ("genesis", {"device_id": "d-1", "runtime": "persistent"}),
            ("enqueue_failure", {"device_id": "d-1", "user_id": "u", "pid": 1}),
            ("clear", {"device_id": "d-1", "pid": 1}),
        ]
    )
    result = replay(log.records())
    assert isinstance(result.error, TransitionError)
    assert (2, State.ANONYMOUS, 1) == (result.error.seq, result.state, result.last_seq)


def test_replay_stops_at_damage_and_keeps_the_last_good_state() -> None:
    """Damage in the stream is reported; the state is the last good record's."""
    log = build(
        [
            ("genesis", {"device_id": "d-1", "runtime": "persistent"}),
            (
                "login",
                {
                    "device_id": "d-1",
                    "user_id": "u",
                    "runtime": "persistent",
                    "pid": 1,
                    "alias": True,
                },
            ),
        ]
    )
    data = log.getvalue().replace(b'"user_id":"u"', b'"user_id":"w"')
    import io

    from idstitch.events import RecordReader

    result = replay(RecordReader(lambda: io.BytesIO(data)))
    assert isinstance(result.error, LogDamagedError)
    assert (2, "hash-chain", State.ANONYMOUS, "d-1") == (
        result.error.seq,
        result.error.cause,
        result.state,
        result.distinct_id,
    )


@given(
    state=st.sampled_from(list(State)),
    user=st.none() | st.sampled_from(["u", "v"]),
    linked=st.none() | st.sampled_from(["u", "v"]),
    undo=st.none() | st.tuples(st.sampled_from(list(State)), st.none() | st.just("u"), st.none()),
    seq=st.integers(min_value=1, max_value=10**9),
)
def test_identity_survives_its_snapshot_form(
    state: State,
    user: str | None,
    linked: str | None,
    undo: tuple[State, str | None, None] | None,
    seq: int,
) -> None:
    """as_dict -> from_dict gives the same identity whenever the identity is coherent."""
    if (user is None) != (state in (State.ANONYMOUS, State.RESET)):
        user = None if state in (State.ANONYMOUS, State.RESET) else "u"
    value = Identity(
        state=state, device_id="d", user_id=user, linked_user=linked, undo=undo, seq=seq, h="b" * 32
    )
    assert value == Identity.from_dict(value.as_dict())


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"state": "nirvana"},
        {"device_id": ""},
        {"seq": -1},
        {"seq": "3"},
        {"seq": 3.0},
        {"seq": True},
        {"user_id": None, "state": "aliased"},
        {"undo": ["aliased"]},
    ],
)
def test_identity_refuses_a_snapshot_that_is_not_one(broken: dict[str, object]) -> None:
    """A snapshot with a missing, mistyped or incoherent field is refused (rebuilt from the log)."""
    good = identity(State.STAMPED, user="u").as_dict()
    data = {} if not broken else {**good, **broken}
    assert Identity.from_dict(data) is None


def test_fold_continues_from_a_start_identity() -> None:
    """Folding the tail after a known identity equals folding the whole log."""
    log = build(
        [
            ("genesis", {"device_id": "d-1", "runtime": "persistent"}),
            (
                "login",
                {
                    "device_id": "d-1",
                    "user_id": "u",
                    "runtime": "persistent",
                    "pid": 1,
                    "alias": True,
                },
            ),
            ("clear", {"device_id": "d-1", "pid": 1}),
        ]
    )
    records = list(log.records())
    head = fold(records[:1]).identity
    assert replay(records).identity == fold(records[1:], head).identity


# --- heal: a damaged log kept aside, the identity it could trust carried into a new one ---

HEAL_GUARDS = [
    # (user_id, linked_user, guard, state the new log starts in)
    (None, None, "no_user", State.ANONYMOUS),
    (None, "bob", "no_user", State.ANONYMOUS),
    ("bob", "bob", "with_user", State.ALIASED),
    ("bob", None, "unlinked_user", State.STAMPED),
    ("carol", "bob", "unlinked_user", State.STAMPED),
]


def heal_fields(user: str | None, linked: str | None) -> dict[str, object]:
    """A heal's fields on device d-1, keeping identity.jsonl.damaged-1 aside."""
    return {
        "device_id": "d-1",
        "user_id": user,
        "linked_user": linked,
        "kept": "identity.jsonl.damaged-1",
        "pid": 1234,
    }


def healed(user: str | None, linked: str | None) -> Identity:
    """The identity a log opened by that heal folds into."""
    result = replay(build([("heal", heal_fields(user, linked))]).records(strict=True))
    assert result.identity is not None
    return result.identity


@pytest.mark.parametrize(("user", "linked", "guard", "state"), HEAL_GUARDS)
def test_decide_heal_starts_a_log_by_the_guard_of_what_it_carries(
    user: str | None, linked: str | None, guard: str, state: State
) -> None:
    """decide(None, "heal") records the carried identity and moves along its guard's row."""
    decision = decide(
        None,
        "heal",
        runtime="persistent",
        pid=1234,
        device_id="d-1",
        user_id=user,
        linked_user=linked,
        kept="identity.jsonl.damaged-1",
    )
    assert decision is not None
    expected = ("heal", heal_fields(user, linked), (INITIAL, "heal", guard, state, False))
    row = decision.transition
    assert expected == (
        decision.kind,
        decision.fields,
        (row.source, row.event, row.guard, row.target, row.alias),
    )
    assert (False, state is not State.ANONYMOUS, False) == (
        decision.alias,
        decision.stamp,
        decision.rotate,
    )


@pytest.mark.parametrize(("user", "linked", "state"), [(u, k, s) for u, k, _, s in HEAL_GUARDS])
def test_fold_heal_carries_the_device_user_and_link(
    user: str | None, linked: str | None, state: State
) -> None:
    """Folding a heal gives its device, user and linked user (set even when no user is known)."""
    log = build([("heal", heal_fields(user, linked))])
    result = replay(log.records(strict=True))
    (record,) = log.records()
    expected = Identity(
        state=state,
        device_id="d-1",
        user_id=user,
        linked_user=linked,
        undo=None,
        seq=1,
        h=record["h"],
    )
    aliases = {} if linked is None else {"d-1": linked}
    assert (None, expected, aliases) == (result.error, result.identity, result.aliases)


def edge(before: Identity, event: str, user: str) -> tuple[str | None, State, bool]:
    """(guard, target, alias) of what ``user`` in a persistent runtime does to ``before``."""
    decision = decide(before, event, runtime="persistent", pid=1, user_id=user)
    assert decision is not None
    return (decision.transition.guard, decision.transition.target, decision.alias)


def test_after_a_heal_the_linked_user_is_not_aliased_again() -> None:
    """R3 over a heal: the device's linked user comes back: guard linked, aliased, no alias."""
    assert ("linked", State.ALIASED, False) == edge(healed(None, "bob"), "response", "bob")


def test_after_a_heal_another_user_is_stamped_only() -> None:
    """R3 over a heal: a device already aliased to bob is only stamped for carol."""
    befores = (healed(None, "bob"), healed("bob", "bob"), healed("dave", "bob"))
    expected = [("other", State.STAMPED, False)] * 3
    assert expected == [edge(before, "login", "carol") for before in befores]


def test_after_a_heal_of_a_never_aliased_device_the_first_user_is_aliased() -> None:
    """A heal with no linked user leaves the device free: the next persistent user aliases it."""
    befores = (healed(None, None), healed("bob", None))
    expected = [("first", State.ALIASED, True)] * 2
    assert expected == [edge(before, "response", "carol") for before in befores]


def test_a_heal_only_starts_a_log() -> None:
    """heal after any record is refused: by decide, and by the fold (which stops there)."""
    with pytest.raises(TransitionError, match="heal is not a transition from state anonymous"):
        decide(healed(None, None), "heal", runtime="persistent", pid=1, device_id="d-2", kept="k")
    log = build([("genesis", {"device_id": "d-1", "runtime": "persistent"})])
    log.append("heal", heal_fields("bob", "bob"), at=AT)
    result = replay(log.records())
    assert isinstance(result.error, TransitionError)
    assert (2, "anonymous", "heal", "with_user", 1) == (
        result.error.seq,
        result.error.state,
        result.error.event,
        result.error.guard,
        result.last_seq,
    )


@given(opening=log_openings(), steps=life_steps())
def test_a_life_from_any_opening_replays_to_what_was_decided(
    opening: RecordSpec, steps: list[LifeStep]
) -> None:
    """Any first record (a heal included), then any events (drops included): replay gives the
    identity and standing aliases decided record by record, and read in order the log never
    aliases a device whose alias stands (carried over, or sent and neither undone nor dropped),
    and drops only an alias that stands."""
    log, identity, aliases = drive_life(opening, steps)
    records = list(log.records(strict=True))
    result = replay(records)
    assert (None, identity, aliases) == (result.error, result.identity, result.aliases)
    standing: dict[str, str] = {}  # device -> user, kept here from the rules alone
    last_alias: str | None = None
    for record in records:
        kind, device = record["kind"], record["device_id"]
        if kind in ("heal", "import"):
            carried = record.get("linked_user") if kind == "heal" else record["user_id"]
            if carried is not None and (kind == "heal" or record["aliased"]):
                standing[device] = carried
        elif kind in USER_EVENTS and record["alias"]:
            assert device not in standing, record
            standing[device] = record["user_id"]
        elif kind == "enqueue_failure":
            assert last_alias is not None
            del standing[last_alias]
        elif kind == "alias_dropped":
            assert record["user_id"] == standing.pop(device, None), record
        last_alias = device if record.get("alias") else None
    assert standing == aliases
    event(f"drops recorded: {min(sum(r['kind'] == 'alias_dropped' for r in records), 2)}")


# --- alias_dropped: the delivery layer finally dropped an alias (R9) ---


def test_the_drop_rows_are_r9_and_send_nothing() -> None:
    """alias_dropped moves aliased to stamped on the device in force, keeps stamped and anonymous
    there, and leaves every state as it is for an earlier device; no row sends an alias."""
    rows = {
        (row.source, row.guard): (row.target, row.alias, row.why.split(":")[0])
        for row in TRANSITIONS
        if row.event == "alias_dropped"
    }
    expected = {
        (State.ALIASED, "current"): (State.STAMPED, False, "R9"),
        (State.STAMPED, "current"): (State.STAMPED, False, "R9"),
        (State.ANONYMOUS, "current"): (State.ANONYMOUS, False, "R9"),
        **{(state, "earlier"): (state, False, "R9") for state in State},
    }
    assert expected == rows


def test_the_opening_kinds_are_the_events_of_the_empty_log() -> None:
    """The codec's OPENING_KINDS (what a cut-off record 1 may be) are exactly the events the table
    allows from the empty log, and alias_dropped is none of them."""
    from idstitch.events._kinds import OPENING_KINDS

    opening = {row.event for row in TRANSITIONS if row.source == INITIAL}
    assert (set(OPENING_KINDS), False) == (opening, "alias_dropped" in opening)


def drop(
    before: Identity, device: str, user: str, aliases: dict[str, str]
) -> tuple[str, dict[str, object], tuple[str, str | None, str]] | None:
    """(kind, fields, (source, guard, target)) of the drop decide makes, or None."""
    decision = decide(
        before,
        "alias_dropped",
        runtime="persistent",
        pid=5,
        device_id=device,
        user_id=user,
        reason="refused: HTTP 400",
        aliases=aliases,
    )
    if decision is None:
        return None
    row = decision.transition
    return decision.kind, decision.fields, (row.source, row.guard, row.target)


def drop_fields(device: str, user: str) -> dict[str, object]:
    """The fields of a drop by process 5, refused with HTTP 400."""
    return {"device_id": device, "user_id": user, "reason": "refused: HTTP 400", "pid": 5}


def test_decide_a_drop_of_the_device_in_force() -> None:
    """The device in force's own alias: aliased becomes stamped (same user), stamped (another
    user on top) and anonymous (after a clear) stay; the record names the alias and the reason."""
    cases = [
        (identity(State.ALIASED, user="u", linked="u"), State.STAMPED),
        (identity(State.STAMPED, user="v", linked="u"), State.STAMPED),
        (identity(State.ANONYMOUS, linked="u"), State.ANONYMOUS),
    ]
    expected = [
        ("alias_dropped", drop_fields("d-1", "u"), (before.state, "current", target))
        for before, target in cases
    ]
    assert expected == [drop(before, "d-1", "u", {"d-1": "u"}) for before, _ in cases]


def test_decide_a_drop_of_an_earlier_device() -> None:
    """A device a logout rotated away: the state in force does not move, in any state."""
    aliases = {"d-0": "u"}
    befores = [
        identity(State.ALIASED, user="v", linked="v"),
        identity(State.STAMPED, user="v"),
        identity(State.ANONYMOUS),
        identity(State.RESET),
    ]
    expected = [
        ("alias_dropped", drop_fields("d-0", "u"), (b.state, "earlier", b.state)) for b in befores
    ]
    assert expected == [drop(b, "d-0", "u", aliases) for b in befores]


def test_decide_refuses_a_drop_of_an_alias_that_does_not_stand() -> None:
    """Never made, made for another user, or already undone or dropped (not in the map), or a map
    that disagrees with the identity in force: nothing to record (None), never an error."""
    aliased = identity(State.ALIASED, user="u", linked="u")
    cases = [
        drop(aliased, "d-1", "u", {}),  # the map holds no alias of d-1
        drop(aliased, "d-1", "v", {"d-1": "u"}),  # d-1 was aliased to u, not v
        drop(aliased, "d-0", "u", {"d-1": "u"}),  # d-0 never aliased
        drop(identity(State.STAMPED, user="u"), "d-1", "u", {"d-1": "u"}),  # linked to nobody
        drop(identity(State.RESET), "d-1", "u", {}),
    ]
    assert [None] * len(cases) == cases


def lived(*records: tuple[str, dict[str, object]]) -> tuple[ReplayResult, MemoryLog]:
    """A log of ``records`` (strictly read back) and its replay."""
    log = build(list(records))
    return replay(log.records(strict=True)), log


def test_after_a_drop_the_device_is_aliased_again_exactly_once() -> None:
    """R9 over a drop: the same user's next response aliases the device again (guard first), the
    one after finds it linked; the fold forgot the alias, then took the new one."""
    result, log = lived(
        ("genesis", {"device_id": "d-1", "runtime": "persistent"}),
        _aliased("u"),
        ("alias_dropped", drop_fields("d-1", "u")),
    )
    assert result.identity is not None
    no_aliases: dict[str, str] = {}
    expected_after_drop = (State.STAMPED, "u", "u", None, no_aliases)
    assert expected_after_drop == (
        result.state,
        result.user_id,
        result.distinct_id,
        result.identity.linked_user,
        result.aliases,
    )
    again = decide(result.identity, "response", runtime="persistent", pid=1, user_id="u")
    assert again is not None
    assert ("first", True) == (again.transition.guard, again.alias)
    log.append(again.kind, again.fields, at=AT)
    realiased = replay(log.records(strict=True))
    assert realiased.identity is not None
    assert (State.ALIASED, {"d-1": "u"}) == (realiased.state, realiased.aliases)
    assert decide(realiased.identity, "response", runtime="persistent", pid=1, user_id="u") is None
    clear = decide(realiased.identity, "clear", runtime="persistent", pid=1)
    assert clear is not None
    log.append(clear.kind, clear.fields, at=AT)
    cleared = replay(log.records(strict=True)).identity
    assert cleared is not None
    assert ("linked", State.ALIASED, False) == edge(cleared, "login", "u")


def test_a_drop_of_an_earlier_device_only_frees_that_device() -> None:
    """An alias of a device a logout rotated away, dropped: the identity in force is the same
    (but for seq and h, and the window in which an enqueue_failure could follow the alias: it
    must directly follow it), only the alias map loses that device; a second drop is refused."""
    records: list[tuple[str, dict[str, object]]] = [
        ("genesis", {"device_id": "d-1", "runtime": "persistent"}),
        _aliased("u"),
        ("logout", {"device_id": "d-1", "new_device_id": "d-2", "pid": 1}),
        (
            "login",
            {"device_id": "d-2", "user_id": "v", "runtime": "persistent", "pid": 1, "alias": True},
        ),
    ]
    before, _ = lived(*records)
    after, _ = lived(*records, ("alias_dropped", drop_fields("d-1", "u")))
    assert before.identity is not None
    assert after.identity is not None
    same = {**before.identity.as_dict(), "undo": None, "seq": 5, "h": after.identity.h}
    assert (same, {"d-2": "v"}) == (after.identity.as_dict(), after.aliases)
    assert {"d-1": "u", "d-2": "v"} == before.aliases
    assert drop(after.identity, "d-1", "u", after.aliases) is None


def test_a_drop_of_a_heals_carried_alias_frees_the_device() -> None:
    """The alias a heal carried over (sent before it) may be dropped too: the device then takes
    the next persistent user's alias, guard first, as a device never aliased does."""
    start = healed(None, "bob")
    decided = drop(start, "d-1", "bob", {"d-1": "bob"})
    assert decided is not None
    result, _ = lived(("heal", heal_fields(None, "bob")), ("alias_dropped", decided[1]))
    assert result.identity is not None
    assert (State.ANONYMOUS, None, {}) == (
        result.state,
        result.identity.linked_user,
        result.aliases,
    )
    assert ("first", State.ALIASED, True) == edge(result.identity, "response", "carol")


def test_the_fold_refuses_a_drop_the_device_in_force_does_not_have() -> None:
    """A hand-made drop naming the device in force with a user it is not aliased to, or opening
    a log, is an impossible transition: the fold stops there, keeping the last good state."""
    result, _ = lived(
        ("genesis", {"device_id": "d-1", "runtime": "persistent"}),
        _aliased("u"),
        ("alias_dropped", drop_fields("d-1", "v")),
    )
    assert isinstance(result.error, TransitionError)
    assert (3, "aliased", "alias_dropped", None, 2, {"d-1": "u"}) == (
        result.error.seq,
        result.error.state,
        result.error.event,
        result.error.guard,
        result.last_seq,
        result.aliases,
    )
    opening, _ = lived(("alias_dropped", drop_fields("d-1", "u")))
    assert isinstance(opening.error, TransitionError)
    assert ("initial", "earlier", None) == (
        opening.error.state,
        opening.error.guard,
        opening.identity,
    )
