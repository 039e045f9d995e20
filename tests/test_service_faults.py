"""Faults around the edges of the service: a full disk under the notice and the audit log,
and several runs sharing one audit log. Each fault is real: a spawned process under
RLIMIT_FSIZE (writes fail with EFBIG), or processes released together at a barrier.
"""

from __future__ import annotations

import io
import multiprocessing
from collections.abc import Callable
from pathlib import Path

from idstitch.machine import IdentityStitch, replay
from idstitch.store import FileLog
from reliability_support import run_together
from workers import (
    audit_log_response,
    audit_log_response_beyond_file_size_limit,
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
