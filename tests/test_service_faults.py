"""Faults around the edges of the service: a full disk under the notice and the audit log,
several runs sharing one audit log, a lock that another process never lets go. Each fault
is real: a spawned process under RLIMIT_FSIZE (writes fail with EFBIG), processes released
together at a barrier, or a spawned process holding the ``flock``.
"""

from __future__ import annotations

import io
import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import IdentityStitch, State, replay
from idstitch.store import FileLog
from idstitch.store._lock import ProcessLock
from reliability_support import run_together
from workers import (
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


def test_a_notice_that_cannot_be_recorded_is_not_shown_and_raises_nothing(tmp_path: Path) -> None:
    """R15: on a full disk the notice says "not shown" (no marker left); the next run shows it."""
    assert 0 == _exit_code(notice_beyond_file_size_limit, str(tmp_path))
    assert not (tmp_path / "notice-shown").exists()
    stitch = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", env={})
    shown = io.StringIO()
    assert stitch.first_run_notice("we collect usage data", stream=shown)
    assert "we collect usage data\n" == shown.getvalue()


def test_an_audit_log_that_fills_up_still_stamps_the_user(tmp_path: Path) -> None:
    """R1, R15: the change is made in memory when the audit log cannot take it."""
    audit = tmp_path / "audit.jsonl"
    assert 0 == _exit_code(audit_log_response_beyond_file_size_limit, str(audit))
    result = replay(FileLog(audit).records())
    assert (None, 1) == (result.error, result.last_seq)  # the genesis, whole


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


def test_the_lock_gives_up_after_its_timeout(stuck_holder: Path) -> None:
    """A holder that never lets go: TimeoutError (an OSError) after the wait, not a hang."""
    lock = ProcessLock(stuck_holder, timeout=0.2)
    with pytest.raises(TimeoutError, match="another process held"), lock:
        pass
    assert not lock.held


def test_a_change_behind_a_stuck_lock_is_made_in_memory(stuck_holder: Path) -> None:
    """R15: the host's login returns (after the bounded wait), stamped in memory, nothing sent."""
    state_dir = stuck_holder.parent
    sink = RecordingSink()
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=sink, env={})
    assert (State.ANONYMOUS, False) == (stitch.state, stitch.persisting)  # could not even start
    stitch.login("user-a")
    assert (State.STAMPED, "user-a", []) == (stitch.state, stitch.distinct_id, sink.aliases)
    assert not (state_dir / "identity.jsonl").exists()
