"""record_dropped_alias: the sender's word that an alias was finally dropped, recorded (R9).

Real state dirs and real processes: a host that aliased, a sender process
that records the drop, and new host processes that must alias the device
again, once. Faults are real too: a process holding the lock, a file size
limit (writes fail with EFBIG), a log of a newer format, a damaged log.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from idstitch.adapters.sinks import RecordedAlias, RecordingSink
from idstitch.audit._verify import Verifier
from idstitch.machine import State
from idstitch.service import record_dropped_alias
from idstitch.store import read_snapshot
from support.helpers import forge_line
from support.reliability import tree
from support.service import first_response_worker, log_records, open_stitch, replay_dir
from support.workers import (
    holding_the_lock,
    record_drop_beyond_file_size_limit,
    record_drop_together,
)

USER = "user-42"


def aliased_dir(state_dir: Path, sink: RecordingSink | None = None) -> str:
    """A state dir whose device a first response aliased to USER; its device id."""
    sink = sink if sink is not None else RecordingSink()
    stitch = open_stitch(state_dir, sink=sink)
    stitch.observe_authenticated_response(USER)
    assert [RecordedAlias(USER, stitch.device_id)] == sink.aliases
    return stitch.device_id


def drop(state_dir: Path, device_id: str, user_id: str = USER, reason: str = "expired") -> bool:
    """What the sender's call returns."""
    return record_dropped_alias(str(state_dir), device_id=device_id, user_id=user_id, reason=reason)


def kinds(state_dir: Path) -> list[tuple[str, bool | None]]:
    """(kind, alias) of every record of the state dir's log."""
    return [(r["kind"], r.get("alias")) for r in log_records(state_dir)]


def verified(state_dir: Path) -> list[str]:
    """The ids verify reports on the state dir's log (none: it holds L1-L9 and T)."""
    verifier = Verifier()
    found = []
    for record in log_records(state_dir):
        found += verifier.check(record, 0)
    return [violation.id for violation in found + verifier.finish()]


def new_process_response(state_dir: Path, user_id: str) -> tuple[str, int, str, str]:
    """A new host process's first authenticated response: (user, aliases it sent, state,
    distinct id)."""
    context = multiprocessing.get_context("spawn")
    alone, results = context.Barrier(1), context.Queue()
    child = context.Process(
        target=first_response_worker, args=(str(state_dir), user_id, alone, results)
    )
    child.start()
    report: tuple[str, int, str, str] = results.get(timeout=120)
    child.join(60)
    assert 0 == child.exitcode
    return report


@pytest.mark.processes
def test_after_a_drop_a_new_process_aliases_the_device_again_exactly_once(tmp_path: Path) -> None:
    """R9: the drop is recorded (aliased becomes stamped); the next process's response aliases
    the device again, the one after finds it aliased and sends nothing; verify holds."""
    device = aliased_dir(tmp_path)
    assert drop(tmp_path, device, reason="refused: HTTP 400")
    dropped = replay_dir(tmp_path).identity
    assert dropped is not None
    assert (State.STAMPED, USER, None) == (dropped.state, dropped.user_id, dropped.linked_user)
    first = new_process_response(tmp_path, USER)
    second = new_process_response(tmp_path, USER)
    assert [(USER, 1, "aliased", USER), (USER, 0, "aliased", USER)] == [first, second]
    expected = [("genesis", None), ("response", True), ("alias_dropped", None), ("response", True)]
    assert (expected, []) == (kinds(tmp_path), verified(tmp_path))
    (record,) = [r for r in log_records(tmp_path) if r["kind"] == "alias_dropped"]
    assert (3, device, USER, "refused: HTTP 400") == (
        record["v"],
        record["device_id"],
        record["user_id"],
        record["reason"],
    )


def test_a_long_lived_host_aliases_again_after_the_sender_dropped_its_alias(
    tmp_path: Path,
) -> None:
    """The host process that aliased is still running: its next response notices the drop in the
    log and aliases the device again, once."""
    sink = RecordingSink()
    host = open_stitch(tmp_path, sink=sink)
    host.observe_authenticated_response(USER)
    assert drop(tmp_path, host.device_id)
    host.observe_authenticated_response(USER)
    host.observe_authenticated_response(USER)
    expected = [RecordedAlias(USER, host.device_id)] * 2
    assert (expected, State.ALIASED) == (sink.aliases, host.state)
    assert host.identity == replay_dir(tmp_path).identity


@pytest.mark.processes
def test_processes_recording_one_drop_at_once_record_it_once(tmp_path: Path) -> None:
    """Six sender processes report the same drop at the same moment: one is recorded (True),
    the others find nothing left to record (False)."""
    device = aliased_dir(tmp_path)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(6), context.Queue()
    senders = [
        context.Process(
            target=record_drop_together, args=(str(tmp_path), device, USER, start, results)
        )
        for _ in range(6)
    ]
    for sender in senders:
        sender.start()
    recorded = sorted(results.get(timeout=120) for _ in senders)
    for sender in senders:
        sender.join(60)
    assert ([False] * 5 + [True], [0] * 6) == (recorded, [s.exitcode for s in senders])
    expected = [("genesis", None), ("response", True), ("alias_dropped", None)]
    assert (expected, []) == (kinds(tmp_path), verified(tmp_path))


def test_a_drop_of_an_earlier_device_leaves_the_identity_in_force(tmp_path: Path) -> None:
    """A device a logout rotated away: recorded, the state in force unchanged, the snapshot
    names the drop (the next start is steady); the same drop again records nothing."""
    sink = RecordingSink()
    host = open_stitch(tmp_path, sink=sink)
    host.login(USER)
    first = host.device_id
    host.logout()
    host.login("user-7")
    before = host.identity
    assert drop(tmp_path, first)
    after = replay_dir(tmp_path)
    assert after.identity is not None
    assert (
        (before.state, before.device_id, before.user_id, before.linked_user),
        {host.device_id: "user-7"},
    ) == (
        (
            after.identity.state,
            after.identity.device_id,
            after.identity.user_id,
            after.identity.linked_user,
        ),
        after.aliases,
    )
    snapshot = read_snapshot(str(tmp_path / "telemetry.json"))
    assert (after.identity.seq, after.identity.h) == (snapshot.data["seq"], snapshot.data["h"])
    assert not drop(tmp_path, first)
    assert ([], 1) == (verified(tmp_path), [k for k, _ in kinds(tmp_path)].count("alias_dropped"))


@pytest.mark.parametrize(
    "case", ["never made", "another user", "undone by enqueue_failure", "dropped already"]
)
def test_a_drop_of_an_alias_that_does_not_stand_records_nothing(tmp_path: Path, case: str) -> None:
    """False, and no byte of the state dir changes: the log never made that alias, made it for
    another user, took it back (enqueue_failure), or a drop took it back already."""
    if case == "undone by enqueue_failure":
        stitch = open_stitch(tmp_path, sink=RecordingSink(fail_aliases=1))
        stitch.observe_authenticated_response(USER)
        device = stitch.device_id
        assert ("enqueue_failure", None) == kinds(tmp_path)[-1]
    else:
        device = aliased_dir(tmp_path)
    if case == "dropped already":
        assert drop(tmp_path, device)
    device, user = ("d-never", USER) if case == "never made" else (device, USER)
    user = "user-7" if case == "another user" else user
    before = tree(tmp_path)
    assert (False, before) == (drop(tmp_path, device, user), tree(tmp_path))


def test_a_dir_without_a_log_gets_no_file(tmp_path: Path) -> None:
    """No log, no alias to drop: False, and no log, lock or snapshot is created (nor a dir)."""
    missing = tmp_path / "missing"
    assert (False, False) == (drop(missing, "d-1"), missing.exists())
    assert (False, []) == (drop(tmp_path, "d-1"), sorted(p.name for p in tmp_path.iterdir()))


def test_a_log_of_a_newer_format_is_left_alone(tmp_path: Path) -> None:
    """L8: after a newer build's record this build appends nothing: False, every byte kept."""
    device = aliased_dir(tmp_path)
    log = tmp_path / "identity.jsonl"
    last = log_records(tmp_path)[-1]
    newer = {"v": 5, "seq": last["seq"] + 1, "at": last["at"], "kind": "vote"}
    log.write_bytes(log.read_bytes() + forge_line(newer, last["h"]))
    before = tree(tmp_path)
    assert (False, before) == (drop(tmp_path, device), tree(tmp_path))


@pytest.mark.processes
def test_a_lock_held_elsewhere_makes_it_give_up_not_hang(tmp_path: Path) -> None:
    """R15: a holder that never lets go: False after the bounded wait, nothing appended; the
    drop is recorded once the lock is free (the sender tries again)."""
    device = aliased_dir(tmp_path)
    before = tree(tmp_path)
    with holding_the_lock(tmp_path):
        assert (False, before) == (drop(tmp_path, device), tree(tmp_path))
    assert drop(tmp_path, device)


@pytest.mark.processes
def test_a_full_disk_records_nothing_and_raises_nothing(tmp_path: Path) -> None:
    """R15: the log cannot grow (EFBIG): the sender's call returns False in a process that exits
    normally, and the log keeps every byte; with room again it records the drop."""
    device = aliased_dir(tmp_path)
    log = tmp_path / "identity.jsonl"
    before = log.read_bytes()
    child = multiprocessing.get_context("spawn").Process(
        target=record_drop_beyond_file_size_limit, args=(str(tmp_path), device, USER)
    )
    child.start()
    child.join(60)
    assert (0, before) == (child.exitcode, log.read_bytes())
    assert drop(tmp_path, device)


def test_a_damaged_log_is_healed_then_its_carried_alias_dropped(tmp_path: Path) -> None:
    """A log whose alias record was edited: the sender's run heals it as any writing run does
    (kept aside byte for byte; the snapshot still names that record, so the new log's heal
    carries the device's alias), then records the drop of that carried alias."""
    device = aliased_dir(tmp_path)
    log = tmp_path / "identity.jsonl"
    damaged = log.read_bytes().replace(b'"pid":', b'"pid" :', 1)
    log.write_bytes(damaged)
    assert drop(tmp_path, device)
    heal, dropped = log_records(tmp_path)
    assert (
        damaged,
        ("heal", device, USER, USER),
        ("alias_dropped", device, USER),
        [],
    ) == (
        (tmp_path / "identity.jsonl.damaged-1").read_bytes(),
        (heal["kind"], heal["device_id"], heal["user_id"], heal["linked_user"]),
        (dropped["kind"], dropped["device_id"], dropped["user_id"]),
        verified(tmp_path),
    )


def test_an_opt_out_in_the_environment_does_not_stop_the_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender runs with DO_NOT_TRACK set (it must not capture itself): the drop is still
    recorded, since it only makes the device count as not aliased."""
    device = aliased_dir(tmp_path)
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    assert drop(tmp_path, device)


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("refused:\nHTTP\t400", "refused: HTTP 400"),
        ("  expired\x1b  ", "expired"),
        ("", "unknown"),
        ("\x85\x00", "unknown"),
        ("x" * 500, "x" * 197 + "..."),
    ],
)
def test_a_reason_is_recorded_as_one_short_line(tmp_path: Path, given: str, recorded: str) -> None:
    """Control characters become spaces, the ends are trimmed, a blank reason is "unknown" and a
    long one is cut to the record's 200 characters: the drop is never refused for its words."""
    device = aliased_dir(tmp_path)
    assert drop(tmp_path, device, reason=given)
    assert recorded == log_records(tmp_path)[-1]["reason"]


def test_arguments_that_are_not_text_record_nothing(tmp_path: Path) -> None:
    """A state dir, id or reason that is not a string: False, nothing raised, nothing written."""
    device = aliased_dir(tmp_path)
    before = tree(tmp_path)
    calls = [
        record_dropped_alias(None, device_id=device, user_id=USER, reason="x"),  # type: ignore[arg-type]
        record_dropped_alias(str(tmp_path), device_id=7, user_id=USER, reason="x"),  # type: ignore[arg-type]
        record_dropped_alias(str(tmp_path), device_id=device, user_id=None, reason="x"),  # type: ignore[arg-type]
        record_dropped_alias(str(tmp_path), device_id=device, user_id=USER, reason=b"x"),  # type: ignore[arg-type]
    ]
    assert ([False] * 4, before) == (calls, tree(tmp_path))


#: A steady host start and response, then the sender's name asked for: whether the entry
#: point's module was loaded before, and after.
_HOST_THEN_NAME = """
import sys
import idstitch.service
from idstitch.machine import IdentityStitch
host = IdentityStitch.open(state_dir=sys.argv[1], runtime="persistent", env={})
host.observe_authenticated_response("user-42")
before = "idstitch.service._dropped" in sys.modules
idstitch.service.record_dropped_alias
print(before, "idstitch.service._dropped" in sys.modules)
"""


@pytest.mark.processes
def test_a_host_start_does_not_load_the_entry_point(tmp_path: Path) -> None:
    """The sender's entry point costs a host start nothing: a steady persistent start never
    imports its module; asking idstitch.service for the name does."""
    aliased_dir(tmp_path)
    command = [sys.executable, "-c", _HOST_THEN_NAME, str(tmp_path)]
    loaded = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    assert "False True\n" == loaded.stdout
