"""A recorded telemetry choice off the happy path, with real processes: a lock holder that
never lets go, a disk that refuses writes, and runs that read a dir whose consent is off."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from idstitch.adapters.capture_server import CaptureServer
from idstitch.service import Storage
from support.service import log_records, open_stitch
from support.workers import disable_beyond_file_size_limit, holding_the_lock

pytestmark = pytest.mark.processes


def _pending(state_dir: Path) -> list[str]:
    return sorted(p.name for p in state_dir.glob("identity.pending-*"))


def test_a_disable_behind_a_held_lock_is_not_lost(tmp_path: Path) -> None:
    """Another process holds the lock: disable returns after the bounded wait, recorded in a
    pending file; a run opened meanwhile is off already; once the lock is free, the next run
    appends the consent record and removes the pending file."""
    stitch = open_stitch(tmp_path)
    stitch.login("user-a")
    with holding_the_lock(tmp_path):
        status = stitch.disable_telemetry()
        pending = _pending(tmp_path)
        meanwhile = open_stitch(tmp_path)
        meanwhile_off = (meanwhile.opted_out, meanwhile.telemetry_status().consent)
        kinds_meanwhile = [r["kind"] for r in log_records(tmp_path)]
    later = open_stitch(tmp_path)
    assert (False, True, 1) == (status.enabled, status.recorded, len(pending))
    assert ((True, "disabled"), ["genesis", "login"]) == (meanwhile_off, kinds_meanwhile)
    assert ["genesis", "login", "consent"] == [r["kind"] for r in log_records(tmp_path)]
    assert ([], True, "user-a") == (_pending(tmp_path), later.opted_out, later.user_id)


@pytest.mark.parametrize("recorded", [True, False])
def test_a_disable_the_disk_refuses_still_holds(tmp_path: Path, recorded: bool) -> None:
    """The log cannot take the record (RLIMIT_FSIZE in a real process): a small pending file
    still fits (recorded) or not even that (40 bytes: not recorded, says the status); the
    process sends nothing either way, and only a recorded choice reaches the next run."""
    open_stitch(tmp_path).login("user-a")
    limit = (tmp_path / "identity.jsonl").stat().st_size + 120 if recorded else 40
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(
        target=disable_beyond_file_size_limit, args=(str(tmp_path), limit, results)
    )
    child.start()
    outcome = results.get(timeout=60)
    child.join(60)
    later = open_stitch(tmp_path)
    assert (0, (False, recorded, "disabled", False)) == (child.exitcode, outcome)
    assert (recorded, ["genesis", "login"]) == (
        later.opted_out,
        [r["kind"] for r in log_records(tmp_path)][:2],
    )


_HOST = """
import sys
import idstitch
stitch = idstitch.open(
    state_dir=sys.argv[1],
    sink=idstitch.SpoolSink("phc_test", host=sys.argv[2], delivery="in_process"),
)
stitch.observe_authenticated_response("user-a")
stitch.capture("deployed")
stitch.close(5.0)
print(stitch.runtime.value, stitch.telemetry_status().enabled)
"""


def _ephemeral_run(state_dir: Path, url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "CI": "true", "TMPDIR": str(tmp)}
    return subprocess.run(
        [sys.executable, "-c", _HOST, str(state_dir), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("choice", ["enabled", "disabled"])
def test_an_ephemeral_run_honours_the_consent_of_the_dir_it_reads(
    tmp_path: Path, choice: str
) -> None:
    """A CI run (ephemeral) that finds a state dir reads its consent: disabled, nothing reaches
    PostHog; enabled, the capture does (the same run, the control)."""
    state_dir = tmp_path / "state"
    (tmp_path / "tmp").mkdir()
    stitch = open_stitch(state_dir)
    if choice == "enabled":
        stitch.enable_telemetry()
    else:
        stitch.disable_telemetry()
    with CaptureServer() as posthog:
        run = _ephemeral_run(state_dir, posthog.url, tmp_path / "tmp")
        received = posthog.wait_for(1, timeout=5.0 if choice == "enabled" else 1.0)
    expected_events = ["deployed"] if choice == "enabled" else []
    assert (0, f"ephemeral {choice == 'enabled'}\n") == (run.returncode, run.stdout)
    assert expected_events == [m["event"] for m in received]
    assert Storage.READ_ONLY == open_stitch(state_dir, runtime="ephemeral").storage


def test_an_enable_behind_a_held_lock_waits_in_a_pending_file(tmp_path: Path) -> None:
    """A run the consent switched off enables while another process holds the lock: the run
    sends again but stays read-only (its choice is pending, not in the log); the next run
    appends the choice and opens healthy."""
    open_stitch(tmp_path).disable_telemetry()
    run = open_stitch(tmp_path)
    with holding_the_lock(tmp_path):
        status = run.enable_telemetry()
        pending = _pending(tmp_path)
    later = open_stitch(tmp_path)
    assert (True, True, 1, Storage.READ_ONLY) == (
        status.enabled,
        status.recorded,
        len(pending),
        run.storage,
    )
    assert (Storage.HEALTHY, False, []) == (later.storage, later.opted_out, _pending(tmp_path))
    assert ["disabled", "enabled"] == [
        r["telemetry"] for r in log_records(tmp_path) if r["kind"] == "consent"
    ]
