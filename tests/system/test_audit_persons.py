"""`idstitch persons`: the person graph PostHog builds from a log's aliases, by its merge rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.sinks import RecordingSink
from idstitch.service import record_dropped_alias
from support.audit import (
    D1,
    D2,
    Spec,
    alias,
    clear,
    dropped,
    enqueue_failure,
    genesis,
    healed,
    idstitch,
    imported,
    json_lines,
    logout,
    stamp,
    write_log,
)
from support.service import DeviceIds, open_stitch

pytestmark = pytest.mark.processes


def person(
    number: int,
    ids: list[str],
    users: list[str],
    history: list[tuple[int, str]],
    *,
    identified: bool = True,
) -> dict[str, Any]:
    """One expected ``persons --json`` person."""
    return {
        "type": "person",
        "person": number,
        "distinct_ids": ids,
        "users": users,
        "devices": [i for i in ids if i not in users],
        "identified": identified,
        "flagged": len(users) > 1,
        "history": [{"seq": seq, "note": note} for seq, note in history],
    }


def summary(persons: int, flagged: list[int], refused: int, personless: int) -> dict[str, Any]:
    """The expected closing object of ``persons --json``."""
    return {
        "type": "summary",
        "persons": persons,
        "flagged": flagged,
        "refused": refused,
        "personless_devices": personless,
        "complete": True,
    }


def new_person(user: str, device: str) -> str:
    """The note of an alias that created a person."""
    return f"$create_alias({user} <- {device}): neither had a person: new person"


def test_a_realiased_device_joins_two_users_in_one_person(tmp_path: Path) -> None:
    """Re-alias of a linked device to a new user: PostHog attaches them to one person; exit 1."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), clear(), alias("user-b")])
    attached = (
        f"$create_alias(user-b <- {D1}): user-b had no person, so PostHog attaches it to "
        f"{D1}'s person (that branch has no identified check)"
    )
    expected = [
        person(1, ["user-a", D1, "user-b"], ["user-a", "user-b"],
               [(2, new_person("user-a", D1)), (4, attached)]),
        summary(1, [1], 0, 0),
    ]  # fmt: skip
    result = idstitch("persons", "--json", str(log))
    assert (1, expected, "") == (result.code, json_lines(result.stdout), result.stderr)


def test_persons_text_flags_the_person_holding_two_users(tmp_path: Path) -> None:
    """Text output names the person, its ids, how each joined, and the flag."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), clear(), alias("user-b")])
    expected = (
        "person 1  identified  users: user-a, user-b  <- holds two users: two people merged "
        "into one\n"
        f"  distinct ids: user-a (user), {D1} (device), user-b (user)\n"
        f"  seq 2: $create_alias(user-a <- {D1}): neither had a person: new person\n"
        f"  seq 4: $create_alias(user-b <- {D1}): user-b had no person, so PostHog attaches it "
        f"to {D1}'s person (that branch has no identified check)\n"
        "failed: 1 person; 0 device id(s) never aliased (their events are personless). "
        "Holding two users: person 1 (user-a, user-b).\n"
    )
    assert (1, expected, "") == idstitch("persons", str(log))


def test_a_clean_log_yields_one_person_per_user(tmp_path: Path) -> None:
    """The library's log of login A, logout, login B: two persons, nobody flagged; exit 0."""
    devices = DeviceIds()
    stitch = open_stitch(tmp_path, sink=RecordingSink(), devices=devices)
    stitch.login("user-a")
    stitch.logout()
    stitch.login("user-b")
    stitch.observe_authenticated_response("user-b")
    first, second = devices.minted
    expected = [
        person(1, ["user-a", first], ["user-a"], [(2, new_person("user-a", first))]),
        person(2, ["user-b", second], ["user-b"], [(4, new_person("user-b", second))]),
        summary(2, [], 0, 0),
    ]
    result = idstitch("persons", "--json", str(tmp_path))
    assert (0, expected, "") == (result.code, json_lines(result.stdout), result.stderr)


def test_a_second_user_with_a_person_of_their_own_is_refused(tmp_path: Path) -> None:
    """Both ids have persons and the device's is identified: PostHog refuses; nobody is merged."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), stamp("user-b"), alias("user-b")])
    call = f"$create_alias(user-b <- {D1})"
    reason = (
        f"{D1}'s person (person 1) is already identified: PostHog refuses to merge it into another"
    )
    expected = [
        person(1, ["user-a", D1], ["user-a"], [(2, new_person("user-a", D1))]),
        person(2, ["user-b"], ["user-b"],
               [(3, "events under user-b create its person"),
                (4, f"{call}: refused, but this person is now identified")]),
        {"type": "refused", "seq": 4, "user_id": "user-b", "device_id": D1, "reason": reason},
        summary(2, [], 1, 0),
    ]  # fmt: skip
    result = idstitch("persons", "--json", str(log))
    assert (0, expected) == (result.code, json_lines(result.stdout))


def test_illegal_ids_and_unqueued_aliases_merge_nothing(tmp_path: Path) -> None:
    """An alias under an illegal id is refused; one undone by enqueue_failure never arrived."""
    log = tmp_path / "identity.jsonl"
    specs = [
        genesis(),
        alias("null"),
        logout(D1, D2),
        alias("user-a", D2),
        enqueue_failure("user-a", D2),
    ]
    write_log(log, specs)
    expected = [
        {
            "type": "refused",
            "seq": 2,
            "user_id": "null",
            "device_id": D1,
            "reason": "'null' is an illegal distinct id: PostHog refuses the merge",
        },
        {
            "type": "refused",
            "seq": 4,
            "user_id": "user-a",
            "device_id": D2,
            "reason": "never queued (enqueue_failure): PostHog got nothing",
        },
        summary(0, [], 2, 2),
    ]
    result = idstitch("persons", "--json", str(log))
    assert (0, expected) == (result.code, json_lines(result.stdout))


def test_an_adopted_alias_counts_as_a_merge_already_made(tmp_path: Path) -> None:
    """An import with aliased=true stands for the adopted tool's alias: a later re-alias joins."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [imported(D1, "user-a", aliased=True), alias("user-b")])
    expected = (
        1,
        ["user-a", D1, "user-b"],
        f"the adopted tool's alias(user-a <- {D1}): neither had a person: new person",
    )
    objects = json_lines(idstitch("persons", "--json", str(log)).stdout)
    code = idstitch("persons", str(log)).code
    assert expected == (code, objects[0]["distinct_ids"], objects[0]["history"][0]["note"])


def test_a_heal_carries_its_devices_merge_into_the_person_graph(tmp_path: Path) -> None:
    """A heal with a linked user stands for the alias the kept log recorded: its merge is in the
    graph, marked as carried over by the heal, and the user the heal stamps gets a person too."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [healed(D1, "user-b", "user-a"), stamp("user-b")])
    carried = (
        f"$create_alias(user-a <- {D1}) carried over by a heal (sent before it; kept in "
        "identity.jsonl.damaged-1): neither had a person: new person"
    )
    expected = [
        person(1, ["user-a", D1], ["user-a"], [(1, carried)]),
        person(2, ["user-b"], ["user-b"], [(1, "events under user-b create its person")],
               identified=False),
        summary(2, [], 0, 0),
    ]  # fmt: skip
    result = idstitch("persons", "--json", str(log))
    assert (0, expected) == (result.code, json_lines(result.stdout))


def test_a_realias_after_a_heal_joins_the_carried_person(tmp_path: Path) -> None:
    """An alias of a device a heal carried over as aliased puts two users in one person."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [healed(D1, None, "user-a"), alias("user-b")])
    result = idstitch("persons", "--json", str(log))
    objects = json_lines(result.stdout)
    expected = (1, ["user-a", D1, "user-b"], [1])
    assert expected == (result.code, objects[0]["distinct_ids"], objects[-1]["flagged"])


def test_persons_on_a_damaged_log_models_what_came_before_and_exits_1(tmp_path: Path) -> None:
    """Damage: persons of the good records, then the damage; exit 1 (the answer is partial)."""
    log = tmp_path / "identity.jsonl"
    data = write_log(log, [genesis(), alias("user-a"), clear()])
    log.write_bytes(data[:-10])
    objects = json_lines(idstitch("persons", "--json", str(log)).stdout)
    result = idstitch("persons", str(log))
    expected = (1, ["person", "damage", "summary"], "torn-tail", False)
    actual = (
        result.code,
        [o["type"] for o in objects],
        objects[1]["cause"],
        objects[2]["complete"],
    )
    assert expected == actual


def test_a_person_not_yet_identified_is_merged_into_the_users(tmp_path: Path) -> None:
    """Both ids have persons, the alias's not identified: PostHog merges it into the user's."""
    log = tmp_path / "identity.jsonl"
    # Events under D2 used as a user id give D2 a person nobody identified (a hand-made oddity).
    write_log(log, [genesis(), stamp("user-a"), logout(D1, D2), stamp(D2, D2), alias("user-a", D2)])
    expected = [
        person(
            1,
            ["user-a", D2],
            ["user-a", D2],
            [
                (2, "events under user-a create its person"),
                (4, f"events under {D2} create its person"),
                (5, f"$create_alias(user-a <- {D2}): person 2 merged into this one"),
            ],
        ),
        summary(1, [1], 0, 1),
    ]
    result = idstitch("persons", "--json", str(log))
    assert (1, expected) == (result.code, json_lines(result.stdout))


# --- alias_dropped: the sender gave an alias up, and PostHog never merged it ---


def persons_of(log: Path, specs: list[Spec]) -> tuple[int, list[dict[str, Any]]]:
    """Write ``specs`` as the log, then ``persons --json``'s exit code and objects."""
    write_log(log, specs)
    result = idstitch("persons", "--json", str(log))
    return result.code, json_lines(result.stdout)


def user_alone(user: str, seq: int) -> dict[str, Any]:
    """The person ``user``'s own events made at ``seq`` (no merge: not identified)."""
    return person(1, [user], [user], [(seq, f"events under {user} create its person")],
                  identified=False)  # fmt: skip


def dropped_note(seq: int, user: str, device: str, at: int, reason: str) -> dict[str, Any]:
    """The refusal that an alias of record ``seq``, dropped by record ``at``, shows."""
    return {
        "type": "refused",
        "seq": seq,
        "user_id": user,
        "device_id": device,
        "reason": f"dropped by the sender at seq {at} ({reason}): PostHog never merged it",
    }


def test_a_dropped_alias_merged_nothing_and_its_user_keeps_a_person(tmp_path: Path) -> None:
    """An alias the sender dropped, two records later: no merge; the user's events made their
    own person (not identified), the device has none; exit 0."""
    specs = [genesis(), alias("user-a"), stamp("user-a"), dropped("user-a")]
    expected = [
        user_alone("user-a", 2),
        dropped_note(2, "user-a", D1, 4, "expired"),
        summary(1, [], 1, 1),
    ]
    assert (0, expected) == persons_of(tmp_path / "identity.jsonl", specs)


def test_a_device_aliased_again_after_a_drop_holds_one_user(tmp_path: Path) -> None:
    """R9: dropped, the device is aliased to another user: PostHog merged only that second alias,
    so nobody is flagged (the same log without the drop would be two people in one person)."""
    specs = [genesis(), alias("user-a"), dropped("user-a"), alias("user-b")]
    expected = [
        user_alone("user-a", 2),
        person(2, ["user-b", D1], ["user-b"], [(4, new_person("user-b", D1))]),
        dropped_note(2, "user-a", D1, 3, "expired"),
        summary(2, [], 1, 0),
    ]
    assert (0, expected) == persons_of(tmp_path / "identity.jsonl", specs)


def test_a_late_drop_takes_out_a_merge_that_later_merges_built_on(tmp_path: Path) -> None:
    """A drop long after its alias, once another merge used that person: the graph is built again
    as if the alias had never been sent (user-a's person never held the device, so user-a's later
    alias of a second device makes a new person of them both)."""
    specs = [
        genesis(),
        alias("user-a"),
        logout(D1, D2),
        alias("user-a", D2, kind="login"),
        dropped("user-a", D1, reason="refused: HTTP 400"),
    ]
    expected = [
        person(1, ["user-a", D2], ["user-a"],
               [(2, "events under user-a create its person"),
                (4, f"$create_alias(user-a <- {D2}): {D2} joins user-a's person")]),
        dropped_note(2, "user-a", D1, 5, "refused: HTTP 400"),
        summary(1, [], 1, 1),
    ]  # fmt: skip
    assert (0, expected) == persons_of(tmp_path / "identity.jsonl", specs)


def test_persons_text_names_a_dropped_alias(tmp_path: Path) -> None:
    """Text output: the dropped alias among the refused, with the drop's seq and reason; the
    library's own log (the service, then the sender's record_dropped_alias)."""
    devices = DeviceIds()
    stitch = open_stitch(tmp_path, sink=RecordingSink(), devices=devices)
    stitch.login("user-a")
    (device,) = devices.minted
    assert record_dropped_alias(str(tmp_path), device_id=device, user_id="user-a", reason="expired")
    expected = (
        "person 1  anonymous  users: user-a\n"
        "  distinct ids: user-a (user)\n"
        "  seq 2: events under user-a create its person\n"
        f"refused seq 2: $create_alias(user-a <- {device}): dropped by the sender at seq 3 "
        "(expired): PostHog never merged it\n"
        "ok: 1 person; 1 device id(s) never aliased (their events are personless). "
        "No person holds two users.\n"
    )
    assert (0, expected, "") == idstitch("persons", str(tmp_path))


def test_a_drop_of_a_carried_alias_takes_the_heals_merge_out(tmp_path: Path) -> None:
    """The alias a heal carried over (sent before it) may be dropped too: no merge is left."""
    specs = [healed(D1, None, "user-a"), dropped("user-a")]
    expected = [dropped_note(1, "user-a", D1, 2, "expired"), summary(0, [], 1, 1)]
    assert (0, expected) == persons_of(tmp_path / "identity.jsonl", specs)


def test_a_drop_of_an_alias_never_made_changes_nothing(tmp_path: Path) -> None:
    """A drop naming no alias (verify reports it, L9) takes no merge out: the graph is the one
    without it."""
    log = tmp_path / "identity.jsonl"
    specs = [genesis(), alias("user-a"), logout(D1, D2)]
    without = persons_of(log, specs)
    assert without == persons_of(log, [*specs, dropped("user-b", D1), dropped("user-a", D2)])
