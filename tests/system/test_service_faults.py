"""Faults around the edges of the service: a full disk under the notice and the audit log,
several runs sharing one audit log, a lock that another process never lets go. Each fault
is real: a spawned process under RLIMIT_FSIZE (writes fail with EFBIG), processes released
together at a barrier, or a spawned process holding the ``flock``.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import IdentityStitch, State, replay
from idstitch.store import FileLog
from idstitch.store._lock import ProcessLock
from support.cli_hosts import Terminal
from support.reliability import run_together
from support.workers import (
    audit_log_response,
    audit_log_response_beyond_file_size_limit,
    hold_lock,
    notice_beyond_file_size_limit,
)


def _exit_code(target: Callable[..., object], *args: object) -> int | None:
    child = multiprocessing.get_context("spawn").Process(target=target, args=args)
    child.start()
    child.join(60)
    return child.exitcode


@pytest.mark.processes
def test_a_notice_that_cannot_be_recorded_is_not_shown_and_raises_nothing(tmp_path: Path) -> None:
    """R15: on a full disk the notice says "not shown" (no marker left); the next run shows it."""
    assert 0 == _exit_code(notice_beyond_file_size_limit, str(tmp_path))
    assert not (tmp_path / "notice-shown").exists()
    stitch = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", env={})
    with Terminal() as terminal:
        assert stitch.first_run_notice("we collect usage data", stream=terminal.stream)
        assert "we collect usage data\n" == terminal.shown()


@pytest.mark.processes
def test_an_audit_log_that_fills_up_still_stamps_the_user(tmp_path: Path) -> None:
    """R1, R15: the change is made in memory when the audit log cannot take it."""
    audit = tmp_path / "audit.jsonl"
    assert 0 == _exit_code(audit_log_response_beyond_file_size_limit, str(audit))
    result = replay(FileLog(audit).records())
    assert (None, 1) == (result.error, result.last_seq)  # the genesis, whole


@pytest.mark.processes
def test_runs_sharing_an_audit_log_append_one_chain(tmp_path: Path) -> None:
    """R5 for audit logs: eight runs at once make one genesis and a log that replays whole."""
    audit = tmp_path / "audit.jsonl"
    users = [(str(audit), f"user-{n}") for n in range(8)]
    assert [0] * 8 == run_together(audit_log_response, users)
    records = list(FileLog(audit).records(strict=True))
    kinds = [record["kind"] for record in records]
    assert (1, 8, 8) == (kinds.count("genesis"), kinds.count("response"), kinds.count("logout"))
    assert replay(records).error is None


@pytest.fixture
def stuck_holder(tmp_path: Path) -> Iterator[Path]:
    """A spawned process holding ``identity.lock`` of ``tmp_path`` until the test ends."""
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    lock = tmp_path / "identity.lock"
    child = context.Process(target=hold_lock, args=(str(lock), held, release))
    child.start()
    try:
        assert held.wait(60)
        yield lock
    finally:
        release.set()
        child.join(60)


@pytest.mark.processes
def test_the_lock_gives_up_after_its_timeout(stuck_holder: Path) -> None:
    """A holder that never lets go: TimeoutError (an OSError) after the wait, not a hang."""
    lock = ProcessLock(stuck_holder, timeout=0.2)
    with pytest.raises(TimeoutError, match="another process held"), lock:
        pass
    assert not lock.held


@pytest.mark.processes
def test_a_change_behind_a_stuck_lock_is_made_in_memory(stuck_holder: Path) -> None:
    """R15: the host's login returns (after the bounded wait), stamped in memory, nothing sent."""
    state_dir = stuck_holder.parent
    sink = RecordingSink()
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=sink, env={})
    assert (State.ANONYMOUS, False) == (stitch.state, stitch.persisting)  # could not even start
    stitch.login("user-a")
    assert (State.STAMPED, "user-a", []) == (stitch.state, stitch.distinct_id, sink.aliases)
    assert not (state_dir / "identity.jsonl").exists()


#: A steady host run: open, see the same user; prints the heavy modules it imported.
_STEADY_RUN = """
import sys
from idstitch.machine import IdentityStitch
stitch = IdentityStitch.open(state_dir=sys.argv[1], runtime="persistent", env={})
stitch.observe_authenticated_response("user-a")
heavy = ("orjson", "pydantic", "posthog", "transitions", "idstitch.store._log")
print(sorted(name for name in heavy if name in sys.modules))
"""


@pytest.mark.processes
def test_a_torn_tail_after_the_snapshot_leaves_start_up_steady(tmp_path: Path) -> None:
    """B4 after a crash mid-append: starts read the snapshot and write nothing, until a change."""
    first = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", env={})
    first.login("user-a")
    log = tmp_path / "identity.jsonl"
    with log.open("ab") as torn:
        torn.write(b'{"v":1,"seq":3,"at":"2026-11')
    snapshot = tmp_path / "telemetry.json"
    before = (snapshot.stat().st_ino, snapshot.read_bytes())
    for _ in range(2):
        again = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", env={})
        again.observe_authenticated_response("user-a")
        assert (first.identity, True) == (again.identity, again.persisting)
        assert before == (snapshot.stat().st_ino, snapshot.read_bytes())
    steady = subprocess.run(
        [sys.executable, "-c", _STEADY_RUN, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "[]" == steady.stdout.strip()
    again.logout()  # the next change removes the torn bytes, then appends
    assert [None, "logout"] == [
        replay(FileLog(log).records()).error,
        list(FileLog(log).records())[-1]["kind"],
    ]


def test_a_long_lived_process_decides_on_what_others_appended(tmp_path: Path) -> None:
    """R5, R7: after another process logged out, this one's login aliases the fresh device."""
    sink = RecordingSink()
    early = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={})
    early.login("user-a")
    other = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", env={})
    other.logout()
    early.observe_authenticated_response("user-a")
    assert (State.ALIASED, other.device_id) == (early.state, early.device_id)
    assert ["user-a", "user-a"] == [alias.user_id for alias in sink.aliases]
    assert other.device_id == sink.aliases[-1].device_id


def test_a_snapshot_of_another_log_is_ignored_not_taken_for_lost_records(tmp_path: Path) -> None:
    """A log replaced by another, no shorter but with fewer records: the snapshot is not its."""
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    a = IdentityStitch.open(state_dir=mine, runtime="persistent", env={})
    for user in ("u-1", "u-2", "u-3"):
        a.login(user)
        a.logout()
    b = IdentityStitch.open(state_dir=theirs, runtime="persistent", env={})
    for n in (1, 2, 3):
        b.login(f"{n}" * 200)
        if n < 3:
            b.logout()
    replacement = (theirs / "identity.jsonl").read_bytes()
    offset = json.loads((mine / "telemetry.json").read_text())["offset"]
    assert (True, True) == (len(replacement) >= offset, b.identity.seq < a.identity.seq)
    (mine / "identity.jsonl").write_bytes(replacement)
    reopened = IdentityStitch.open(state_dir=mine, runtime="persistent", env={})
    assert (b.identity, True) == (reopened.identity, reopened.persisting)
    assert b.identity.h == json.loads((mine / "telemetry.json").read_text())["h"]


@pytest.mark.parametrize("then_clear", [False, True], ids=["after-alias", "after-clear"])
def test_a_snapshot_that_contradicts_the_log_is_not_trusted(
    tmp_path: Path, then_clear: bool
) -> None:
    """R3: an edited snapshot saying "never aliased" cannot buy a second alias.

    Right after the alias the record it names gives it away; after a clear only the
    whole log does, which is folded before any alias is decided.
    """
    sink = RecordingSink()
    first = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={})
    first.login("u-a")
    if then_clear:
        first.clear_distinct_id()
    path = tmp_path / "telemetry.json"
    edited = {**json.loads(path.read_text()), "state": "anonymous", "user_id": None}
    edited.update(linked_user=None, distinct_id=edited["device_id"])
    path.write_text(json.dumps(edited))
    reopened = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={})
    reopened.observe_authenticated_response("u-b")
    assert (State.STAMPED, ["u-a"]) == (reopened.state, [a.user_id for a in sink.aliases])


def test_damage_before_the_tail_is_healed_before_the_first_change(tmp_path: Path) -> None:
    """R3, R15: start-up reads only the tail; the first change reads it all, finds the edit
    and heals before writing: the snapshot (which names the last record) gives the identity,
    the edited log is kept byte for byte, and the fresh device is aliased once."""
    sink = RecordingSink()
    first = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={})
    first.login("user-a")
    first.logout()  # a fresh device, never aliased: the next user aliases it
    log = tmp_path / "identity.jsonl"
    damaged = log.read_bytes().replace(b'"user_id":"user-a"', b'"user_id":"user-x"', 1)
    log.write_bytes(damaged)
    later = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={})
    later.observe_authenticated_response("user-b")
    assert (State.ALIASED, "user-b", True, first.device_id) == (
        later.state,
        later.distinct_id,
        later.persisting,
        later.device_id,
    )
    assert ["user-a", "user-b"] == [a.user_id for a in sink.aliases]
    assert damaged == (tmp_path / "identity.jsonl.damaged-1").read_bytes()
