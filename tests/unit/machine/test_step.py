"""The step beside the table: each event's guard and effect, and that folding is stepping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, get_args

import pytest
from hypothesis import given
from idstitch.adapters.runtime import Runtime as AdapterRuntime
from idstitch.events import KINDS, RUNTIMES, TransitionError
from idstitch.events._kinds import OPENING_KINDS, Runtime
from idstitch.events._models import RuntimeName
from idstitch.machine import (
    EVENTS,
    INITIAL,
    TRANSITIONS,
    USER_EVENTS,
    Identity,
    State,
    Transition,
    fold,
    guard_of,
    replay,
    step,
)
from idstitch.machine._live import LiveMachine
from idstitch.machine._table import RULES, compiled_table, transition_of
from idstitch.store import MemoryLog
from support.helpers import drive_life
from support.strategies import LifeStep, RecordSpec, life_steps, log_openings, record_sequences

H = "c" * 32
TABLE = compiled_table()


def ident(
    state: State,
    *,
    user: str | None = None,
    linked: str | None = None,
    device: str = "d-1",
    undo: tuple[State, str | None, str | None] | None = None,
    seq: int = 3,
    h: str = "a" * 32,
    consent: tuple[str | None, str | None] = (None, None),
) -> Identity:
    """A hand-made identity (device d-1 at seq 3, no consent recorded, unless told)."""
    return Identity(
        state=state,
        device_id=device,
        user_id=user,
        linked_user=linked,
        undo=undo,
        seq=seq,
        h=h,
        consent=consent[0],
        consent_at=consent[1],
    )


def rec(kind: str, **fields: object) -> dict[str, Any]:
    """A record of ``kind`` at seq 4 (the step reads no other envelope key)."""
    return {"seq": 4, "kind": kind, **fields, "h": H}


def user_rec(kind: str, user: str, *, alias: bool, device: str = "d-1") -> dict[str, Any]:
    """A response or login record."""
    return rec(kind, device_id=device, user_id=user, runtime="persistent", pid=1, alias=alias)


def row(source: str, event: str, guard: str | None) -> Transition:
    """The table's row for ``(source, event, guard)``."""
    return TABLE[source, event, guard]


AFTER_ALIAS = (State.ANONYMOUS, None, None)

#: (start, standing aliases, record) -> (row, identity after, aliases after, alias mark).
CASES: list[tuple[str, Identity | None, dict[str, str], dict[str, Any], tuple[Any, ...]]] = [
    (
        "genesis mints a device",
        None,
        {},
        rec("genesis", device_id="d-1", runtime="persistent"),
        (row(INITIAL, "genesis", None), ident(State.ANONYMOUS, seq=4, h=H), {}, None),
    ),
    (
        "import of an aliased device adopts its alias",
        None,
        {},
        rec("import", device_id="d-1", user_id="u", aliased=True),
        (
            row(INITIAL, "import", "with_user"),
            ident(State.ALIASED, user="u", linked="u", seq=4, h=H),
            {"d-1": "u"},
            "adopted",
        ),
    ),
    (
        "import of a known user stamps them",
        None,
        {},
        rec("import", device_id="d-1", user_id="u", aliased=False),
        (
            row(INITIAL, "import", "unlinked_user"),
            ident(State.STAMPED, user="u", seq=4, h=H),
            {},
            None,
        ),
    ),
    (
        "import claiming an alias but no user adopts no alias",
        None,
        {},
        rec("import", device_id="d-1", user_id=None, aliased=True),
        (row(INITIAL, "import", "no_user"), ident(State.ANONYMOUS, seq=4, h=H), {}, None),
    ),
    (
        "heal carries the device's alias, with no user stamped",
        None,
        {},
        rec("heal", device_id="d-1", user_id=None, linked_user="v", kept="k", pid=1),
        (
            row(INITIAL, "heal", "no_user"),
            ident(State.ANONYMOUS, linked="v", seq=4, h=H),
            {"d-1": "v"},
            "carried",
        ),
    ),
    (
        "heal of the device's own user is aliased",
        None,
        {},
        rec("heal", device_id="d-1", user_id="v", linked_user="v", kept="k", pid=1),
        (
            row(INITIAL, "heal", "with_user"),
            ident(State.ALIASED, user="v", linked="v", seq=4, h=H),
            {"d-1": "v"},
            "carried",
        ),
    ),
    (
        "heal of another user is stamped",
        None,
        {},
        rec("heal", device_id="d-1", user_id="u", linked_user=None, kept="k", pid=1),
        (
            row(INITIAL, "heal", "unlinked_user"),
            ident(State.STAMPED, user="u", seq=4, h=H),
            {},
            None,
        ),
    ),
    (
        "the first alias is sent and can be undone",
        ident(State.ANONYMOUS),
        {},
        user_rec("response", "u", alias=True),
        (
            row(State.ANONYMOUS, "response", "first"),
            ident(State.ALIASED, user="u", linked="u", undo=AFTER_ALIAS, seq=4, h=H),
            {"d-1": "u"},
            "sent",
        ),
    ),
    (
        "the device's own user comes back aliased",
        ident(State.RESET, linked="u"),
        {"d-1": "u"},
        user_rec("login", "u", alias=False),
        (
            row(State.RESET, "login", "linked"),
            ident(State.ALIASED, user="u", linked="u", seq=4, h=H),
            {"d-1": "u"},
            None,
        ),
    ),
    (
        "another user is stamped only",
        ident(State.ALIASED, user="u", linked="u", undo=AFTER_ALIAS),
        {"d-1": "u"},
        user_rec("response", "v", alias=False),
        (
            row(State.ALIASED, "response", "other"),
            ident(State.STAMPED, user="v", linked="u", seq=4, h=H),
            {"d-1": "u"},
            None,
        ),
    ),
    (
        "enqueue_failure undoes the alias",
        ident(State.ALIASED, user="u", linked="u", undo=(State.STAMPED, "w", None)),
        {"d-1": "u", "d-0": "x"},
        rec("enqueue_failure", device_id="d-1", user_id="u", pid=1),
        (
            row(State.ALIASED, "enqueue_failure", "was_stamped"),
            ident(State.STAMPED, user="w", seq=4, h=H),
            {"d-0": "x"},
            "undone",
        ),
    ),
    (
        "clear forgets the user and keeps the device's alias",
        ident(State.ALIASED, user="u", linked="u"),
        {"d-1": "u"},
        rec("clear", device_id="d-1", pid=1),
        (
            row(State.ALIASED, "clear", None),
            ident(State.ANONYMOUS, linked="u", seq=4, h=H),
            {"d-1": "u"},
            None,
        ),
    ),
    (
        "logout rotates the device and forgets the user",
        ident(State.ALIASED, user="u", linked="u"),
        {"d-1": "u"},
        rec("logout", device_id="d-1", new_device_id="d-2", pid=1),
        (
            row(State.ALIASED, "logout", None),
            ident(State.RESET, device="d-2", seq=4, h=H),
            {"d-1": "u"},
            None,
        ),
    ),
    (
        "a drop of the device in force's alias frees it",
        ident(State.ALIASED, user="u", linked="u"),
        {"d-1": "u"},
        rec("alias_dropped", device_id="d-1", user_id="u", reason="expired", pid=1),
        (
            row(State.ALIASED, "alias_dropped", "current"),
            ident(State.STAMPED, user="u", seq=4, h=H),
            {},
            "dropped",
        ),
    ),
    (
        "a drop of an earlier device's alias leaves the state as it is",
        ident(State.RESET, device="d-2"),
        {"d-1": "u"},
        rec("alias_dropped", device_id="d-1", user_id="u", reason="expired", pid=1),
        (
            row(State.RESET, "alias_dropped", "earlier"),
            ident(State.RESET, device="d-2", seq=4, h=H),
            {},
            "dropped",
        ),
    ),
]


@pytest.mark.parametrize(
    ("start", "aliases", "record", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_transition_has_its_effect(
    start: Identity | None,
    aliases: dict[str, str],
    record: dict[str, Any],
    expected: tuple[Any, ...],
) -> None:
    """step gives the row, the identity after, the standing aliases and the alias mark."""
    standing = dict(aliases)
    transition, after, mark = step(start, record, standing)
    assert expected == (transition, after, standing, mark)
    assert expected[0].guard == guard_of(start, record)


def test_a_refused_record_changes_nothing() -> None:
    """A record with no row raises TransitionError naming it, and leaves the aliases alone."""
    aliases = {"d-1": "u"}
    refused = [
        (None, user_rec("response", "u", alias=False), ("initial", "response", "other")),
        (ident(State.ANONYMOUS), rec("genesis", device_id="d-1", runtime="persistent"), None),
        (
            ident(State.STAMPED, user="u"),
            rec("enqueue_failure", device_id="d-1", user_id="u", pid=1),
            None,
        ),
        (
            ident(State.ALIASED, user="u", linked="u"),
            rec("alias_dropped", device_id="d-1", user_id="v", reason="expired", pid=1),
            None,
        ),
    ]
    for start, record, _ in refused:
        with pytest.raises(TransitionError) as caught:
            step(start, record, aliases)
        error = caught.value
        state = INITIAL if start is None else start.state.value
        expected = (4, state, record["kind"], guard_of(start, record))
        assert expected == (error.seq, error.state, error.event, error.guard)
    assert {"d-1": "u"} == aliases


def test_a_record_not_yet_written_is_judged_as_the_next_one() -> None:
    """transition_of takes a record without seq or h: its error names the next seq."""
    start = ident(State.STAMPED, user="u", seq=8)
    assert TABLE[State.STAMPED, "login", "first"] == transition_of(
        start,
        {
            "kind": "login",
            "device_id": "d-1",
            "user_id": "v",
            "runtime": "persistent",
            "pid": 1,
            "alias": True,
        },
    )
    with pytest.raises(TransitionError) as caught:
        transition_of(
            start, {"kind": "enqueue_failure", "device_id": "d-1", "user_id": "u", "pid": 1}
        )
    assert (9, "stamped", None) == (caught.value.seq, caught.value.state, caught.value.guard)


def test_every_event_is_a_kind_and_has_one_rule() -> None:
    """The table's events, the step's rules and the log's kinds are the same set; EVENTS is
    KINDS, and the user events and the opening kinds are what the table says they are."""
    assert EVENTS is KINDS
    assert set(KINDS) == set(RULES) == {row.event for row in TRANSITIONS}
    assert set(OPENING_KINDS) == {row.event for row in TRANSITIONS if row.source == INITIAL}
    assert set(USER_EVENTS) == {row.event for row in TRANSITIONS if row.guard == "first"}


def test_the_runtimes_are_declared_once() -> None:
    """Runtime is the one declaration: RUNTIMES, the models' Literal and the adapters' name
    are the same runtimes."""
    assert AdapterRuntime is Runtime
    assert RUNTIMES == tuple(runtime.value for runtime in Runtime) == get_args(RuntimeName)
    assert (str, str) == tuple(type(name) for name in RUNTIMES)


def test_the_live_machine_moves_only_by_feeding_it_records() -> None:
    """No reset_to, no to_<state>(), no trigger or event methods: feeding records moves the
    live machine along the step's rows, and a refused record moves nothing."""
    live = LiveMachine()
    assert ["aliases", "feed", "identity", "state"] == [
        name for name in dir(live) if not name.startswith("_")
    ]
    log = MemoryLog()
    at = "2026-11-27T17:00:00.000000Z"
    taken = [
        live.feed(log.append("genesis", {"device_id": "d-1", "runtime": "persistent"}, at=at)),
        live.feed(
            log.append(
                "login",
                {
                    "device_id": "d-1",
                    "user_id": "u",
                    "runtime": "persistent",
                    "pid": 1,
                    "alias": True,
                },
                at=at,
            )
        ),
    ]
    assert [row(INITIAL, "genesis", None), row(State.ANONYMOUS, "login", "first")] == taken
    assert ("aliased", replay(log.records()).identity, {"d-1": "u"}) == (
        live.state,
        live.identity,
        live.aliases,
    )
    with pytest.raises(TransitionError):
        live.feed({**rec("genesis", device_id="d-2", runtime="persistent"), "seq": 3})
    assert "aliased" == live.state


def _former_fold(records: Iterable[Mapping[str, Any]]) -> tuple[Any, ...]:  # noqa: PLR0912 - the former fold, kept whole as the oracle
    """The fold as it was before the step (its `if` chains, kept here as the oracle):
    (identity as a dict, standing aliases, (seq, state, event, guard) of a refusal)."""
    state: Any = INITIAL
    device: Any = None
    user: Any = None
    linked: Any = None
    undo: Any = None
    consent: Any = (None, None)
    aliases: dict[str, str] = {}
    last: Mapping[str, Any] | None = None
    for record in records:
        kind = record["kind"]
        new_user: Any = record.get("user_id")
        guard: str | None = None
        if kind in USER_EVENTS:
            guard = "first" if record["alias"] else "linked" if new_user == linked else "other"
        elif kind == "enqueue_failure":
            guard = None if undo is None else "was_" + undo[0]
        elif kind == "import":
            guard = (
                "no_user"
                if new_user is None
                else "with_user"
                if record["aliased"]
                else "unlinked_user"
            )
        elif kind == "heal":
            guard = (
                "no_user"
                if new_user is None
                else "with_user"
                if new_user == record["linked_user"]
                else "unlinked_user"
            )
        elif kind == "alias_dropped":
            if record["device_id"] != device:
                guard = "earlier"
            else:
                guard = "current" if new_user == linked else None
        target = TABLE.get((state, kind, guard))
        if target is None:
            return (
                _as_dict((state, device, user, linked, undo), last, consent),
                aliases,
                (record["seq"], str(state), kind, guard),
            )
        if kind in USER_EVENTS:
            if target.alias:
                undo, linked = (state, user, linked), new_user
                aliases[record["device_id"]] = new_user
            else:
                undo = None
            user = new_user
        else:
            if kind == "enqueue_failure":
                _, user, linked = undo
                if linked is None:
                    aliases.pop(device, None)
                else:
                    aliases[device] = linked
            elif kind == "logout":
                device, user, linked = record["new_device_id"], None, None
            elif kind == "clear":
                user = None
            elif kind == "heal":
                device, user, linked = record["device_id"], new_user, record["linked_user"]
                if linked is not None:
                    aliases[device] = linked
            elif kind == "alias_dropped":
                if aliases.get(record["device_id"]) == new_user:
                    del aliases[record["device_id"]]
                if guard == "current":
                    linked = None
            elif kind == "consent":
                consent = (record["telemetry"], record["at"])
            else:
                device, user, linked = record["device_id"], new_user, None
                if target.target is State.ALIASED:
                    linked = user
                    aliases[device] = user
            undo = None
        state = target.target
        last = record
    return _as_dict((state, device, user, linked, undo), last, consent), aliases, None


def _as_dict(
    fields: tuple[Any, ...], last: Mapping[str, Any] | None, consent: Any = (None, None)
) -> Any:
    """The identity ``(state, device, user, linked, undo)`` after ``last``, as a dict, with
    the ``(consent, consent_at)`` the records recorded."""
    if last is None:
        return None
    state, device, user, linked, undo = fields
    return ident(
        state,
        user=user,
        linked=linked,
        device=device,
        undo=undo,
        seq=last["seq"],
        h=last["h"],
        consent=consent,
    ).as_dict()


def _stepped(records: Iterable[Mapping[str, Any]]) -> tuple[Any, ...]:
    """The same three things, record by record through step."""
    identity: Identity | None = None
    aliases: dict[str, str] = {}
    for record in records:
        try:
            _, identity, _ = step(identity, record, aliases)
        except TransitionError as error:
            refused = (error.seq, error.state, error.event, error.guard)
            return None if identity is None else identity.as_dict(), aliases, refused
    return None if identity is None else identity.as_dict(), aliases, None


def _folded(records: Iterable[Mapping[str, Any]]) -> tuple[Any, ...]:
    """The same three things, from one fold."""
    result = fold(records)
    refused = None
    if isinstance(result.error, TransitionError):
        error = result.error
        refused = (error.seq, error.state, error.event, error.guard)
    identity = None if result.identity is None else result.identity.as_dict()
    return identity, result.aliases, refused


@given(specs=record_sequences(max_size=8))
def test_stepping_any_records_is_the_former_fold(specs: list[RecordSpec]) -> None:
    """Any valid records, meaningful or not: stepping them one by one, folding them, and the
    fold as it was before the step agree on the identity, the aliases and any refusal."""
    log = MemoryLog()
    records = [log.append(spec.kind, spec.fields, at=spec.at) for spec in specs]
    expected = _former_fold(records)
    assert expected == _stepped(records)
    assert expected == _folded(records)


@given(opening=log_openings(), steps=life_steps())
def test_stepping_a_life_is_what_was_decided(opening: RecordSpec, steps: list[LifeStep]) -> None:
    """A life decided event by event: stepping its log, folding it, the former fold and the
    live machine fed its records all reach the identity and aliases it was decided into."""
    log, identity, aliases = drive_life(opening, steps)
    records = list(log.records())
    expected = (identity.as_dict(), aliases, None)
    assert expected == _former_fold(records) == _stepped(records) == _folded(records)
    live = LiveMachine()
    for record in records:
        live.feed(record)
    assert (identity.state.value, identity, aliases) == (live.state, live.identity, live.aliases)


def test_the_lists_of_events_are_spelled_only_where_they_are_declared() -> None:
    """USER_EVENTS and FORGETTINGS are written once, in the table: no code folder spells
    either list again (as a tuple, list or set literal of exactly those kinds)."""
    import ast

    from idstitch.machine._table import FORGETTINGS
    from support import REPO

    lists = {frozenset(USER_EVENTS), frozenset(FORGETTINGS)}
    found = []
    for folder in ("events", "store", "machine", "service", "delivery", "adapters", "audit"):
        for path in sorted((REPO / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                    continue
                values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if len(values) == len(node.elts) and frozenset(values) in lists:
                    found.append(f"{folder}/{path.name}")
    assert ["machine/_table.py", "machine/_table.py"] == found  # the two declarations
