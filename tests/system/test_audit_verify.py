"""`idstitch verify`: L1-L9 hold on logs the library writes, and each is caught when broken."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.runtime import Runtime
from idstitch.adapters.sinks import RecordingSink
from idstitch.audit._verify import INVARIANTS, cause_name
from idstitch.events._codec import body_hash
from idstitch.service import record_dropped_alias
from support import REPO
from support.audit import (
    D1,
    D2,
    Spec,
    alias,
    all_hold,
    clear,
    damage_of,
    dropped,
    enqueue_failure,
    genesis,
    healed,
    idstitch,
    imported,
    in_process,
    json_lines,
    logout,
    stamp,
    write_lines,
    write_log,
)
from support.service import DeviceIds, log_records, open_stitch

PLACEHOLDER = "PostHog treats this id as a placeholder and refuses to merge under it"

#: name -> (records, [(id, seq, message)]) for logs the library would never write.
CASES: dict[str, tuple[list[Spec], list[tuple[str, int, str]]]] = {
    "double alias": (
        [genesis(), alias("user-a"), alias("user-a")],
        [
            ("L2", 3, (f"device {D1} now has 2 standing aliases (seq 2, 3); "
                      "PostHog merges on every one")),
            ("L4", 3, (f"response aliases device {D1} to 'user-a', but it was already aliased "
                      "to 'user-a' at seq 2")),
        ],
    ),
    "re-alias of an adopted device": (
        [imported(D1, "user-a", aliased=True), alias("user-b")],
        [
            ("L4", 2, (f"response aliases device {D1} to 'user-b', but it was already adopted "
                      "as aliased to 'user-a' at seq 1")),
        ],
    ),
    "alias after clear, to another user": (
        [genesis(), alias("user-a", kind="login"), clear(), alias("user-b", kind="login")],
        [
            ("L2", 4, (f"device {D1} now has 2 standing aliases (seq 2, 4); "
                      "PostHog merges on every one")),
            ("L4", 4, (f"login aliases device {D1} to 'user-b', but it was already aliased "
                      "to 'user-a' at seq 2")),
        ],
    ),
    "alias in an ephemeral runtime": (
        [genesis(runtime="ephemeral"), alias("user-a", runtime="ephemeral")],
        [("L3", 2, f"response aliased {D1} to 'user-a' in an ephemeral runtime")],
    ),
    "device id reused after logout": (
        [genesis(), logout(D1, D2), logout(D2, D1)],
        [("L5", 3, f"logout rotates to device {D1}, which the log had already seen")],
    ),
    "logout rotates to a user id seen before": (
        [genesis(), stamp("user-a"), logout(D1, "user-a")],
        [("L5", 3, "logout rotates to device user-a, which the log had already seen")],
    ),
    "logout rotates to an adopted user id": (
        [imported(D1, "user-a", aliased=True), logout(D1, "user-a")],
        [("L5", 2, "logout rotates to device user-a, which the log had already seen")],
    ),
    "record for a device not in force": (
        [genesis(), stamp("user-a", D2)],
        [("L6", 2, f"response names device {D2}, but the device in force is {D1}")],
    ),
    "illegal user ids": (
        [genesis(), stamp("null"), alias(" ")],
        [
            ("L7", 2, f"user id 'null' is illegal: {PLACEHOLDER}"),
            ("L7", 3, "user id ' ' is illegal: a user id must not be blank"),
        ],
    ),
    "transitions the table refuses": (
        [genesis(), enqueue_failure("user-a"), genesis(D2)],
        [
            ("T", 2, ("enqueue_failure is not a transition from state anonymous; "
                     "the record is skipped")),
            ("L6", 3, f"genesis names device {D2}, but the device in force is {D1}"),
            ("T", 3, "genesis is not a transition from state anonymous; the record is skipped"),
        ],
    ),
    "an enqueue_failure the table refuses undoes no alias": (
        [genesis(), alias("user-a"), alias("user-b"), enqueue_failure("user-b")],
        [
            ("L2", 3, (f"device {D1} now has 2 standing aliases (seq 2, 3); "
                      "PostHog merges on every one")),
            ("L4", 3, (f"response aliases device {D1} to 'user-b', but it was already aliased "
                      "to 'user-a' at seq 2")),
            ("T", 4, ("enqueue_failure [was_aliased] is not a transition from state aliased; "
                     "the record is skipped")),
        ],
    ),
    "an enqueue_failure after aliases the table refused undoes none": (
        [alias("user-a"), alias("user-b"), enqueue_failure("user-b")],
        [
            ("T", 1, ("response [first] is not a transition from state initial; "
                     "the record is skipped")),
            ("L2", 2, (f"device {D1} now has 2 standing aliases (seq 1, 2); "
                      "PostHog merges on every one")),
            ("L4", 2, (f"response aliases device {D1} to 'user-b', but it was already aliased "
                      "to 'user-a' at seq 1")),
            ("T", 2, ("response [first] is not a transition from state initial; "
                     "the record is skipped")),
            ("T", 3, ("enqueue_failure is not a transition from state initial; "
                     "the record is skipped")),
        ],
    ),
    "re-alias of a device a heal carried over as aliased": (
        [healed(D1, None, "user-a"), alias("user-b")],
        [
            ("L4", 2, (f"response aliases device {D1} to 'user-b', but it was already carried "
                      "over a heal as aliased to 'user-a' at seq 1")),
        ],
    ),
    "an illegal linked user in a heal": (
        [healed(D1, "user-a", "undefined"), clear()],
        [("L7", 1, f"linked user 'undefined' is illegal: {PLACEHOLDER}")],
    ),
    "logout rotates to a heal's linked user": (
        [healed(D1, None, "user-a"), logout(D1, "user-a")],
        [("L5", 2, "logout rotates to device user-a, which the log had already seen")],
    ),
    "a heal anywhere but first": (
        [genesis(), healed(D1, "user-a", "user-a")],
        [
            ("T", 2, ("heal [with_user] is not a transition from state anonymous; "
                     "the record is skipped")),
        ],
    ),
    "a drop of an alias never made": (
        [genesis(), logout(D1, D2), dropped("user-a", D1)],
        [("L9", 3, (f"alias_dropped names an alias of device {D1} to 'user-a', but none stands "
                    "(never made, or already undone or dropped)"))],
    ),
    "a drop naming another user than the alias": (
        [genesis(), alias("user-a"), logout(D1, D2), dropped("user-b", D1)],
        [("L9", 4, (f"alias_dropped names an alias of device {D1} to 'user-b', but none stands "
                    "(never made, or already undone or dropped); the alias that stands is to "
                    "'user-a'"))],
    ),
    "a drop of an alias dropped already": (
        [genesis(), alias("user-a"), dropped("user-a"), dropped("user-a")],
        [
            ("L9", 4, (f"alias_dropped names an alias of device {D1} to 'user-a', but none "
                       "stands (never made, or already undone or dropped)")),
            ("T", 4, "alias_dropped is not a transition from state stamped; the record is skipped"),
        ],
    ),
    "a drop of an alias an enqueue_failure undid": (
        [genesis(), alias("user-a"), enqueue_failure("user-a"), dropped("user-a")],
        [
            ("L9", 4, (f"alias_dropped names an alias of device {D1} to 'user-a', but none "
                       "stands (never made, or already undone or dropped)")),
            ("T", 4, ("alias_dropped is not a transition from state anonymous; "
                      "the record is skipped")),
        ],
    ),
    "after a drop one new alias, not two": (
        [genesis(), alias("user-a"), dropped("user-a"), alias("user-a"), clear(), alias("user-b")],
        [
            ("L2", 6, (f"device {D1} now has 2 standing aliases (seq 4, 6); "
                      "PostHog merges on every one")),
            ("L4", 6, (f"response aliases device {D1} to 'user-b', but it was already aliased "
                      "to 'user-a' at seq 4")),
        ],
    ),
    "a drop the table refuses takes no alias off": (
        [genesis(), alias("user-a"), clear(), alias("user-b"), dropped("user-a"), clear(),
         alias("user-c")],
        [
            ("L2", 4, (f"device {D1} now has 2 standing aliases (seq 2, 4); "
                      "PostHog merges on every one")),
            ("L4", 4, (f"response aliases device {D1} to 'user-b', but it was already aliased "
                      "to 'user-a' at seq 2")),
            ("T", 5, "alias_dropped is not a transition from state aliased; the record is skipped"),
            ("L2", 7, (f"device {D1} now has 3 standing aliases (seq 2, 4, 7); "
                      "PostHog merges on every one")),
            ("L4", 7, (f"response aliases device {D1} to 'user-c', but it was already aliased "
                      "to 'user-a' at seq 2")),
        ],
    ),
    "checking goes on past each violation": (
        [genesis(), alias("user-a", runtime="ephemeral"), clear(), stamp("None")],
        [
            ("L3", 2, f"response aliased {D1} to 'user-a' in an ephemeral runtime"),
            ("L7", 4, f"user id 'None' is illegal: {PLACEHOLDER}"),
        ],
    ),
}  # fmt: skip


def violations(objects: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """(id, seq, message) of every violation object."""
    return [(o["id"], o["seq"], o["message"]) for o in objects if o["type"] == "violation"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_verify_catches_what_the_library_never_writes(tmp_path: Path, name: str) -> None:
    """Hand-made logs, hashes valid, meaning wrong: each violation by id, seq and why; exit 1."""
    specs, expected = CASES[name]
    log = tmp_path / "identity.jsonl"
    write_log(log, specs)
    result = in_process("verify", "--json", str(log))
    objects = json_lines(result.stdout)
    ids = sorted({rule for rule, _, _ in expected}, key=lambda r: (r == "T", r))
    summary = {
        "type": "summary",
        "records": len(specs),
        "violations": len(expected),
        "ids": ids,
        "invariants": INVARIANTS,
        "complete": True,
        "stopped_at": None,
        "consent": None,
    }
    assert (1, expected, summary, "") == (
        result.code,
        violations(objects),
        objects[-1],
        result.stderr,
    )


def test_an_undone_realias_breaks_l4_but_leaves_one_standing_alias(tmp_path: Path) -> None:
    """A re-alias whose enqueue failed was still decided wrongly (L4); PostHog got one (no L2)."""
    log = tmp_path / "identity.jsonl"
    specs = [genesis(), alias("user-a"), clear(), alias("user-b"), enqueue_failure("user-b")]
    write_log(log, specs)
    result = in_process("verify", "--json", str(log))
    expected = [
        (
            "L4",
            4,
            (
                f"response aliases device {D1} to 'user-b', but it was already aliased to "
                "'user-a' at seq 2"
            ),
        ),
    ]
    assert (1, expected) == (result.code, violations(json_lines(result.stdout)))


def _offset_of(data: bytes, seq: int) -> int:
    return sum(len(line) for line in data.splitlines(keepends=True)[: seq - 1])


def test_an_edited_record_breaks_l1_and_stops_the_check(tmp_path: Path) -> None:
    """An edit breaks the hash chain: L1 at the edited record, nothing after it is checked."""
    log = tmp_path / "identity.jsonl"
    data = write_log(log, [genesis(), stamp("null"), alias("user-a"), clear()])
    log.write_bytes(data.replace(b'"user-a"', b'"user-b"'))
    result = in_process("verify", "--json", str(log))
    offset = _offset_of(data, 3)
    expected = [
        ("L7", 2, f"user id 'null' is illegal: {PLACEHOLDER}"),
        (
            "L1",
            3,
            (
                f"at byte {offset}: broken hash chain: the hash does not match: this record or the "
                "one before it was edited, removed, inserted or moved"
            ),
        ),
    ]
    objects = json_lines(result.stdout)
    stopped = {
        "seq": 3,
        "offset": offset,
        "cause": "hash-chain",
        "complete": False,
        "records": 2,
    }
    actual_stop = {
        **{k: objects[-1]["stopped_at"][k] for k in ("seq", "offset", "cause")},
        "complete": objects[-1]["complete"],
        "records": objects[-1]["records"],
    }
    assert (1, expected, stopped) == (result.code, violations(objects), actual_stop)


def test_a_gap_in_seq_breaks_l1(tmp_path: Path) -> None:
    """A record whose seq skips a number (hash intact) is L1."""
    log = tmp_path / "identity.jsonl"
    data = write_log(log, [genesis(), clear(), clear()], skip_seq_after=2)
    result = in_process("verify", "--json", str(log))
    expected = [("L1", 3, f"at byte {_offset_of(data, 3)}: gap in seq: seq 4 where 3 was expected")]
    assert (1, expected) == (result.code, violations(json_lines(result.stdout)))


@pytest.mark.parametrize("version", [5, 0, "1", None])
def test_a_version_this_build_cannot_read_breaks_l8(tmp_path: Path, version: object) -> None:
    """A newer, never existing or mistyped format version is L8, and the check stops there."""
    log = tmp_path / "identity.jsonl"
    extra = {"v": version, "seq": 2, "at": "2026-11-27T17:00:01.000000Z", "kind": "clear",
             "device_id": D1, "pid": 7}  # fmt: skip
    data = write_lines(log, [genesis()], extra)
    offset = _offset_of(data, 2)
    if version == 5:
        detail = (
            "format version 5 is newer than this build reads (4); upgrade idstitch to read it. "
            "Nothing was rewritten"
        )
    else:
        detail = f"format version {version!r} is not one this build reads (1 to 4)"
    result = in_process("verify", "--json", str(log))
    assert (1, [("L8", 2, f"at byte {offset}: {detail}")]) == (
        result.code,
        violations(json_lines(result.stdout)),
    )


@pytest.mark.parametrize(
    ("before", "late", "version", "detail"),
    [
        ([], healed(D1, "user-a", "user-a"), 1,
         "format version 1 cannot hold a heal record (the kind exists from version 2 on)"),
        ([genesis(), alias("user-a")], dropped("user-a"), 2,
         ("format version 2 cannot hold an alias_dropped record (the kind exists from "
          "version 3 on)")),
    ],
    ids=["heal v 1", "alias_dropped v 2"],
)  # fmt: skip
def test_a_kind_claiming_a_version_before_it_existed_breaks_l8(
    tmp_path: Path, before: list[Spec], late: Spec, version: int, detail: str
) -> None:
    """heal exists from format 2 on, alias_dropped from 3: an older v is L8 (wrong for its
    kind); the check stops there."""
    log = tmp_path / "identity.jsonl"
    kind, fields = late
    seq = len(before) + 1
    extra = {"v": version, "seq": seq, "at": "2026-11-27T17:00:09.000000Z", "kind": kind}
    data = write_lines(log, before, {**extra, **fields})
    result = in_process("verify", "--json", str(log))
    objects = json_lines(result.stdout)
    offset = _offset_of(data, seq)
    assert (1, [("L8", seq, f"at byte {offset}: {detail}")], len(before)) == (
        result.code,
        violations(objects),
        objects[-1]["records"],
    )


def test_a_version_2_record_of_a_first_release_kind_verifies(tmp_path: Path) -> None:
    """A v 2 clear is a version this build reads: no L8, nothing else wrong."""
    log = tmp_path / "identity.jsonl"
    extra = {"v": 2, "seq": 2, "at": "2026-11-27T17:00:01.000000Z", "kind": "clear",
             "device_id": D1, "pid": 7}  # fmt: skip
    write_lines(log, [genesis()], extra)
    result = in_process("verify", "--json", str(log))
    assert (0, []) == (result.code, violations(json_lines(result.stdout)))


def _hash_valid_line(body: bytes, prev_h: str) -> bytes:
    """``body`` (a record's bytes without ``h``, however wrong) with a correct hash link."""
    return body[:-1] + b',"h":"' + body_hash(prev_h, body).encode("ascii") + b'"}\n'


def _damaged(good: bytes, name: str) -> bytes:
    """``good`` (a log of 3 records) with damage ``name`` where its third record was."""
    lines = good.splitlines(keepends=True)
    second_h = json.loads(lines[1])["h"]
    body = (
        b'{"v":1,"seq":3,"at":"2026-11-27T17:00:02.000000Z","kind":"response","device_id":"'
        + D1.encode()
        + b'","user_id":"user-\xff","runtime":"persistent","pid":7,"alias":false}'
    )
    damage = {
        "torn tail": lines[2][:25],
        "blank line": b"\n" + lines[2],
        "a raw 0xff byte in a hash-valid record": _hash_valid_line(body, second_h),
        "a huge line": b"x" * 100_000 + b"\n" + lines[2],
        "no v at all": _hash_valid_line(
            b'{"seq":3,"at":"2026-11-27T17:00:02.000000Z","kind":"clear","device_id":"'
            + D1.encode()
            + b'","pid":7}',
            second_h,
        ),
    }[name]
    return b"".join(lines[:2]) + damage


@pytest.mark.parametrize(
    "name",
    [
        "torn tail",
        "blank line",
        "a raw 0xff byte in a hash-valid record",
        "a huge line",
        "no v at all",
    ],
)
def test_damage_that_is_no_record_breaks_l1_not_l8(tmp_path: Path, name: str) -> None:
    """Damage that is not a bad v (torn, not JSON, no v at all) is L1, with the reader's cause."""
    log = tmp_path / "identity.jsonl"
    data = _damaged(write_log(log, [genesis(), clear(), clear()]), name)
    log.write_bytes(data)
    _, error = damage_of(data)
    assert error is not None
    message = f"at byte {error.offset}: {cause_name(error.cause)}: {error.detail}"
    result = in_process("verify", "--json", str(log))
    assert (1, [("L1", 3, message)]) == (result.code, violations(json_lines(result.stdout)))


@pytest.mark.processes
def test_verify_prints_violations_and_what_each_id_protects(tmp_path: Path) -> None:
    """Text output: one line per violation, a summary, then the meaning of each broken id."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), clear(), alias("user-b")])
    l2 = "no device has two aliases standing at once (PostHog would merge it twice)"
    l4 = "a device linked to a user is never linked again, to anyone"
    expected = (
        f'L2  seq 4 broke "{l2}": device {D1} now has 2 standing aliases (seq 2, 4); PostHog '
        "merges on every one\n"
        f"L4  seq 4 broke \"{l4}\": response aliases device {D1} to 'user-b', but it was already "
        "aliased to 'user-a' at seq 2\n"
        "failed: 2 violations in 4 records.\n"
        f"  L2  {l2}\n"
        f"  L4  {l4}\n"
    )
    assert (1, expected, "") == idstitch("verify", str(log))


@pytest.mark.processes
def test_every_log_the_library_writes_verifies(tmp_path: Path) -> None:
    """The seed's scenarios through the real service, one state dir: L1-L8 all hold; exit 0."""
    devices = DeviceIds()
    sink = RecordingSink(fail_aliases=1)
    stitch = open_stitch(tmp_path, sink=sink, devices=devices)
    stitch.observe_authenticated_response("user-a")  # enqueue failure
    stitch.login("user-a")  # retried
    stitch.observe_authenticated_response("user-a")  # steady state: nothing
    stale = open_stitch(tmp_path, sink=sink, devices=devices)
    stale.observe_authenticated_response("user-b")  # stale disk: stamp
    stale.clear_distinct_id()
    stale.logout()
    stale.login("user-c")
    ci = open_stitch(tmp_path, sink=sink, runtime=Runtime.EPHEMERAL, devices=devices)
    ci.observe_authenticated_response("user-d")  # in memory only
    result = idstitch("verify", str(tmp_path / "identity.jsonl"))
    assert (0, all_hold(8), "") == result


@pytest.mark.processes
def test_a_log_with_drops_the_library_wrote_verifies(tmp_path: Path) -> None:
    """The service's log with a sender's drops (of the device in force, aliased again after it,
    then of an earlier one, whose device is not the one in force: no L6): L1-L9 hold."""
    devices = DeviceIds()
    stitch = open_stitch(tmp_path, devices=devices)
    stitch.observe_authenticated_response("user-a")
    first = stitch.device_id
    assert record_dropped_alias(str(tmp_path), device_id=first, user_id="user-a", reason="x")
    stitch.observe_authenticated_response("user-a")  # aliased again
    stitch.logout()
    stitch.login("user-b")
    assert record_dropped_alias(str(tmp_path), device_id=first, user_id="user-a", reason="y")
    result = idstitch("verify", str(tmp_path))
    kinds = [record["kind"] for record in log_records(tmp_path)]
    expected = ["genesis", "response", "alias_dropped", "response", "logout", "login"]
    assert ((0, all_hold(7), ""), [*expected, "alias_dropped"]) == (
        result,
        kinds,
    )


def test_the_audit_doc_explains_every_id_verify_reports() -> None:
    """docs/audit.md has a row for each id of INVARIANTS, and no row for an id it lacks."""
    doc = (REPO / "docs" / "audit.md").read_text()
    rows = re.findall(r"^\| (L\d|T) \|", doc, flags=re.MULTILINE)
    assert list(INVARIANTS) == rows
