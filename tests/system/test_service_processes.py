"""Several real processes on one state dir: the cross-process gate (rule R5)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import IdentityStitch
from support.service import first_response_worker, log_records

pytestmark = pytest.mark.processes

PROCESSES = 8


def run_workers(state_dir: Path, users: list[str]) -> list[tuple[str, int, str, str]]:
    """Start one process per user behind a barrier; return what each reported."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(users))
    results = context.Queue()
    workers = [
        context.Process(target=first_response_worker, args=(str(state_dir), user, barrier, results))
        for user in users
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [0] * len(users) == [worker.exitcode for worker in workers]
    return reports


def test_processes_seeing_their_first_response_at_once_alias_exactly_once(tmp_path: Path) -> None:
    """8 processes observe the same user at the same moment: exactly one alias in total."""
    IdentityStitch.open(state_dir=tmp_path, runtime="persistent", sink=RecordingSink(), env={})
    reports = run_workers(tmp_path, ["user-a"] * PROCESSES)
    assert 1 == sum(aliases for _, aliases, _, _ in reports)
    assert {("aliased", "user-a")} == {(state, distinct) for _, _, state, distinct in reports}
    records = log_records(tmp_path)
    assert [("genesis", None), ("response", True)] == [(r["kind"], r.get("alias")) for r in records]


def test_processes_with_different_users_alias_only_the_first(tmp_path: Path) -> None:
    """Different users racing on one fresh device: one alias, every other user only stamped."""
    IdentityStitch.open(state_dir=tmp_path, runtime="persistent", sink=RecordingSink(), env={})
    users = [f"user-{n}" for n in range(PROCESSES)]
    reports = run_workers(tmp_path, users)
    assert 1 == sum(aliases for _, aliases, _, _ in reports)
    for user, aliases, state, distinct in reports:
        assert (user, "aliased" if aliases else "stamped") == (distinct, state)
    records = log_records(tmp_path)
    assert list(range(1, len(records) + 1)) == [r["seq"] for r in records]
    assert 1 == sum(1 for r in records if r.get("alias"))
    assert PROCESSES + 1 == len(records)
