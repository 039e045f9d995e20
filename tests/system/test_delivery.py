"""The spool and the sender (rule R17), with the real posthog client and a local capture server.

Events are spooled by real host processes (tests/delivery_host.py) or by a
sink in this process; senders run detached, as the host starts them, or in
this process through ``run_sender`` where a test steps through a run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.capture_server import CaptureServer
from idstitch.adapters.sinks import SpoolSink
from idstitch.delivery import read_status, run_sender
from idstitch.delivery._spawn import can_outlive, sender_running, spawn_sender
from idstitch.delivery._spool import (
    DROPPED_NAME,
    RETRY_NAME,
    RUN_NAME,
    SpoolWriter,
    iso_now,
    new_uuid,
    read_json,
    segments,
)
from idstitch.machine import IdentityStitch, State, replay
from idstitch.store import FileLog
from support import SUPPORT
from support.helpers import bare_environment
from support.spool import capture_entry, spool_events

HOST = SUPPORT / "delivery_host.py"


def run_host(
    state_dir: Path, url: str, *steps: str, env: dict[str, str] | None = None, bare: bool = False
) -> dict[str, Any]:
    """Run the host CLI to completion; its report (it must exit 0 with nothing on stderr)."""
    environ = bare_environment() if bare else dict(os.environ)
    environ.pop("DO_NOT_TRACK", None)
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, str(HOST), str(state_dir), url, *steps],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


def wait_drained(folder: str, timeout: float = 30.0) -> None:
    """Wait until no sender runs and the spool holds nothing (or fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sender_running(folder) and read_status(folder).waiting == 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"the spool did not drain: {read_status(folder).as_dict()}")


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie not yet reaped counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_senders_gone(report: dict[str, Any], timeout: float = 30.0) -> None:
    """Wait until the senders the host started have exited."""
    deadline = time.monotonic() + timeout
    for pid in report["senders"]:
        while not gone(pid):
            assert time.monotonic() < deadline, "the sender did not exit"
            time.sleep(0.02)


def free_port() -> int:
    """A port nothing listens on (a refused connection)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def spooled(folder: str) -> list[dict[str, Any]]:
    """Every event line the spool holds (headers left out)."""
    entries = []
    for segment in segments(folder):
        for line in segment.read_from(0).splitlines():
            entry = json.loads(line)
            if entry["type"] != "header":
                entries.append(entry)
    return entries


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as capture:
        yield capture


# ----------------------------------------------------------------- the host's side


@pytest.mark.processes
def test_a_command_spools_and_a_detached_sender_delivers(
    tmp_path: Path, server: CaptureServer
) -> None:
    """R17: a command spools, and the one detached sender it starts delivers the alias (user to
    device), the event and cli_command_executed once each, as the user; no segment is left."""
    report = run_host(tmp_path / "state", server.url, "response:user-1", "capture:deploy")
    assert report["mode"] == "detached"
    assert len(report["senders"]) == 1
    wait_drained(report["folder"])
    messages = server.wait_for(3)
    assert ["$create_alias", "deploy", "cli_command_executed"] == [m["event"] for m in messages]
    alias = messages[0]
    device = alias["properties"]["alias"]
    assert alias["distinct_id"] == "user-1"  # the direction PostHog merges in
    assert device != "user-1"
    assert all(m["distinct_id"] == "user-1" for m in messages)
    assert all("$process_person_profile" not in m["properties"] for m in messages)
    assert all(count == 1 for count in server.uuids().values())
    assert read_json(os.path.join(report["folder"], RUN_NAME))["result"] == "drained"
    assert [] == [s.name for s in segments(report["folder"])]  # delivered and closed: removed


@pytest.mark.processes
def test_device_only_events_create_no_person(tmp_path: Path, server: CaptureServer) -> None:
    """Events of a device no user was seen on go out under the device id with
    `$process_person_profile` false, and no alias is sent."""
    report = run_host(tmp_path / "state", server.url, "capture:look")
    wait_drained(report["folder"])
    messages = server.wait_for(2)
    assert {m["event"] for m in messages} == {"look", "cli_command_executed"}
    for message in messages:
        assert message["distinct_id"] == message["properties"]["$device_id"]
        assert message["properties"]["$process_person_profile"] is False
    assert server.events("$create_alias") == []


@pytest.mark.processes
def test_the_uuid_and_time_of_capture_are_what_posthog_gets(tmp_path: Path) -> None:
    """Events a command spooled while PostHog was unreachable arrive later, from another run, with
    the uuid and timestamp fixed at capture."""
    port = free_port()
    report = run_host(tmp_path / "state", f"http://127.0.0.1:{port}", "events:3")
    wait_senders_gone(report)
    entries = spooled(report["folder"])
    assert len(entries) == 4
    time.sleep(0.01)
    with CaptureServer(port=port) as later:
        assert "drained" == run_sender(report["folder"]).result
        arrived = {m["uuid"]: m for m in later.wait_for(4)}
    assert {e["uuid"] for e in entries} == set(arrived)
    for entry in entries:
        assert arrived[entry["uuid"]]["timestamp"] == entry["timestamp"]
        assert arrived[entry["uuid"]]["event"] == entry["event"]


@pytest.mark.processes
def test_the_host_never_waits_for_a_hanging_posthog(tmp_path: Path) -> None:
    """R17: against a server that holds every request 120 s the host has exited while its sender
    still waits for the answer to its one request; after the sender is killed the four events
    are still spooled and the next run delivers them."""
    with CaptureServer("hang", hang_seconds=120) as hanging:
        report = run_host(tmp_path / "state", hanging.url, "response:user-1", "events:2")
        deadline = time.monotonic() + 30
        while not hanging.paths:  # the sender, in the background, is talking to it
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # Its request unanswered (it gives up after 10 s), the sender runs on: the host did
        # not wait for it.
        assert (["/batch/"], True) == (hanging.paths, sender_running(report["folder"]))
        os.kill(report["senders"][0], signal.SIGKILL)
        wait_senders_gone(report)
        waiting = read_status(report["folder"]).waiting
        assert waiting == 4  # alias, two events, cli_command_executed: none lost
        hanging.release()
        hanging.mode = "ok"
        hanging.hang_seconds = 0
        assert "drained" == run_sender(report["folder"]).result
        assert read_status(report["folder"]).waiting == 0


@pytest.mark.processes
def test_offline_commands_keep_their_events_until_posthog_is_back(tmp_path: Path) -> None:
    """Three commands against a closed port keep all ten events and leave a failed run
    (ConnectionError); once the server is up, one run delivers each event once."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    for user in ("user-1", "user-1", "user-1"):
        report = run_host(tmp_path / "state", url, f"response:{user}", "events:2")
        wait_senders_gone(report)
    folder = report["folder"]
    status = read_status(folder)
    assert status.waiting == 1 + 3 * 3  # one alias, then two events and the command each run
    last = read_json(os.path.join(folder, RUN_NAME))
    assert last["result"] == "failed"
    assert last["error"] == "ConnectionError"
    with CaptureServer(port=port) as back:
        assert "drained" == run_sender(folder).result
        messages = back.wait_for(10)
    assert len(messages) == 10
    assert all(count == 1 for count in back.uuids().values())
    assert read_status(folder).waiting == 0
    assert read_json(os.path.join(folder, RUN_NAME))["last_delivery"] is not None


@pytest.mark.processes
def test_a_failed_run_pauses_new_senders(tmp_path: Path) -> None:
    """After a failed run neither spawn_sender nor the next command starts a sender before the
    retry-after time; the events keep waiting."""
    port = free_port()
    report = run_host(tmp_path / "state", f"http://127.0.0.1:{port}", "events:1")
    wait_senders_gone(report)
    assert spawn_sender(report["folder"]) is None  # retry-after is in the future
    again = run_host(tmp_path / "state", f"http://127.0.0.1:{port}", "events:1")
    assert again["senders"] == []
    assert read_status(report["folder"]).waiting == 4


@pytest.mark.processes
def test_in_process_delivery_keeps_what_its_bound_cut_short(
    tmp_path: Path, server: CaptureServer
) -> None:
    """In-process delivery starts no sender and leaves none running; each event either arrived
    before the host exited or is still in the spool (however slow the machine made the
    bounded run), and a later run delivers the rest."""
    report = run_host(
        tmp_path / "state", server.url, "events:2", env={"HOST_DELIVERY": "in_process"}
    )
    folder = report["folder"]
    assert ("in_process", [], False) == (report["mode"], report["senders"], sender_running(folder))
    arrived = {m["uuid"] for m in server.messages}  # no one else sends: the host did
    assert 3 == len(arrived | {entry["uuid"] for entry in spooled(folder)})
    run_sender(folder)
    first_arrivals = {m["uuid"]: m["event"] for m in server.messages}
    assert ["e0", "e1", "cli_command_executed"] == list(first_arrivals.values())
    assert read_status(folder).waiting == 0


@pytest.mark.processes
def test_in_process_delivery_is_bounded(tmp_path: Path) -> None:
    """R17: in-process delivery against a server that holds every request 120 s gives up at its
    1 s bound: leaving the command takes under 5 s (room for a loaded machine, yet half the 10 s
    one unanswered request would hold the host without the bound), and both events stay
    spooled for the next run."""
    with CaptureServer("hang", hang_seconds=120) as hanging:
        report = run_host(
            tmp_path / "state", hanging.url, "events:1", env={"HOST_DELIVERY": "in_process"}
        )
        assert report["exit_seconds"] < 5
        hanging.release()
    assert read_status(report["folder"]).waiting == 2  # kept for the next run


@pytest.mark.processes
def test_an_ephemeral_run_spools_in_the_temporary_dir(
    tmp_path: Path, server: CaptureServer
) -> None:
    """R2: an ephemeral run spools under $TMPDIR and writes nothing in the state dir; its events
    arrive stamped with the user, and no alias is sent."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    report = run_host(
        tmp_path / "state",
        server.url,
        "response:user-1",
        "capture:build",
        env={"HOST_RUNTIME": "ephemeral", "TMPDIR": str(temporary)},
    )
    assert Path(report["folder"]).parent == temporary
    assert not (tmp_path / "state").exists()  # nothing lasting is written (R2)
    wait_drained(report["folder"])
    messages = server.wait_for(2)
    assert ["build", "cli_command_executed"] == [m["event"] for m in messages]
    assert all(m["distinct_id"] == "user-1" for m in messages)  # stamped, never aliased
    assert server.events("$create_alias") == []


@pytest.mark.processes
def test_the_host_path_imports_no_client(tmp_path: Path, server: CaptureServer) -> None:
    """A command that spools and starts the sender imports none of the heavy packages: on the
    first run (genesis and the alias written) and on a steady one."""
    first = run_host(tmp_path / "state", server.url, "response:user-1", bare=True)
    report = run_host(tmp_path / "state", server.url, "response:user-1", "events:3", bare=True)
    assert ([], []) == (first["imported"], report["imported"])
    assert len(report["senders"]) <= 1
    wait_drained(report["folder"])
    assert len(server.wait_for(6)) >= 6


# ------------------------------------------------------------------- the spool


def test_segments_are_private_files_in_a_private_dir(tmp_path: Path) -> None:
    """The spool is a 0700 folder and a segment a 0600 file opening with its project's header; the
    writer holds the segment's lock until it closes."""
    folder = tmp_path / "spool"
    writer = SpoolWriter(str(folder), {"api_key": "k"})
    assert writer.append({"type": "capture", "uuid": new_uuid(), "timestamp": iso_now()})
    assert folder.stat().st_mode & 0o777 == 0o700
    [segment] = segments(str(folder))
    assert os.stat(segment.path).st_mode & 0o777 == 0o600
    header, event = (json.loads(line) for line in Path(segment.path).read_bytes().splitlines())
    assert header["type"] == "header"
    assert header["api_key"] == "k"
    assert event["type"] == "capture"
    assert segment.in_use()  # the writer may still append
    writer.close()
    assert not segment.in_use()


def test_a_link_in_place_of_the_spool_is_refused(tmp_path: Path) -> None:
    """A symlink in place of the spool folder makes the append fail, saying "not a directory", and
    nothing is written through the link."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "spool").symlink_to(elsewhere)
    writer = SpoolWriter(str(tmp_path / "spool"), {})
    assert not writer.append({"type": "capture", "uuid": new_uuid(), "timestamp": iso_now()})
    assert "not a directory" in (writer.failed or "")
    assert list(elsewhere.iterdir()) == []


def test_uuids_are_version_4() -> None:
    """Event uuids are version 4 UUIDs in canonical text form; 200 of them are all distinct."""
    import uuid

    made = {new_uuid() for _ in range(200)}
    assert len(made) == 200
    for text in made:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert str(parsed) == text


def test_times_are_utc_iso(monkeypatch: pytest.MonkeyPatch) -> None:
    """Event times are ISO 8601 with a +00:00 offset whatever the local zone, to the
    microsecond, rounded rather than cut; without an argument, the clock's time now."""
    from datetime import datetime, timedelta

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: a local time would show
    time.tzset()
    try:
        assert (
            "1970-01-01T00:00:00.000000+00:00",
            "1970-01-01T00:00:02.000000+00:00",
            "2001-09-09T01:46:40.123457+00:00",
        ) == (iso_now(0.0), iso_now(1.9999999), iso_now(1_000_000_000.1234567))
        before = time.time()
        parsed = datetime.fromisoformat(iso_now())
        after = time.time()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert timedelta(0) == parsed.utcoffset()
    assert before - 1e-6 <= parsed.timestamp() <= after + 1e-6


@pytest.mark.processes
def test_a_fork_writes_a_segment_of_its_own(tmp_path: Path, server: CaptureServer) -> None:
    """A child forked from a writer appends to a segment of its own, not its parent's; all three
    events arrive, the parent's two in order."""
    folder = str(tmp_path / "spool")
    writer = SpoolWriter(folder, {"api_key": "k", "host": server.url})
    assert writer.append(capture_entry("parent-1"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 0 if writer.append(capture_entry("child")) else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert writer.append(capture_entry("parent-2"))
    writer.close()
    assert len(segments(folder)) == 2
    assert "drained" == run_sender(folder).result
    assert sorted(m["event"] for m in server.wait_for(3)) == ["child", "parent-1", "parent-2"]
    parent_order = [m["event"] for m in server.messages if m["event"].startswith("parent")]
    assert parent_order == ["parent-1", "parent-2"]


# ------------------------------------------------------------------ the sender


@pytest.mark.processes
def test_server_errors_are_retried_with_the_same_event(tmp_path: Path) -> None:
    """A 500 is retried after one backoff pause; the same events (uuids) arrive once, in order."""
    with CaptureServer("error") as flaky:
        folder = str(tmp_path / "spool")
        uuids = spool_events(folder, flaky.url, 3)
        pauses: list[float] = []

        def sleep(seconds: float) -> None:
            pauses.append(seconds)
            flaky.mode = "ok"

        report = run_sender(folder, sleep=sleep)
        assert report.result == "drained"
        assert report.delivered == 3
        assert report.tries == 2
        assert len(pauses) == 1
        assert uuids == [m["uuid"] for m in flaky.messages]


def test_a_rate_limit_is_waited_out_as_the_server_asks(tmp_path: Path) -> None:
    """A 429 with Retry-After: 3 makes the sender wait at least 3 s before it tries again."""
    with CaptureServer("status", status=429, retry_after=3) as limited:
        folder = str(tmp_path / "spool")
        spool_events(folder, limited.url, 2)
        pauses: list[float] = []

        def sleep(seconds: float) -> None:
            pauses.append(seconds)
            limited.mode = "ok"

        assert "drained" == run_sender(folder, sleep=sleep).result
        assert pauses[0] >= 3
        assert len(limited.messages) == 2


def test_the_run_gives_up_when_its_time_is_spent(tmp_path: Path) -> None:
    """A run against a server that keeps answering 500 ends `failed` (HTTP 500) once its budget is
    spent, keeps both events and sets a retry-after time in the future."""
    with CaptureServer("error") as down:
        folder = str(tmp_path / "spool")
        spool_events(folder, down.url, 2)
        report = run_sender(folder, budget=1.0)
        assert report.result == "failed"
        assert report.error == "HTTP 500"
        assert report.tries >= 2
        assert read_status(folder).waiting == 2
        assert float(Path(folder, "retry-after").read_text()) > time.time()


def test_a_refused_event_is_dropped_alone_and_counted(tmp_path: Path) -> None:
    """A 400 for a batch holding one poison event: the batch is split until that event is alone, it
    is dropped and counted as refused, and the other five arrive in order."""
    with CaptureServer(poison="e3") as strict:
        folder = str(tmp_path / "spool")
        spool_events(folder, strict.url, 6)
        report = run_sender(folder)
        assert report.result == "drained"
        assert report.delivered == 5
        assert report.dropped == {"refused": 1}
        assert [f"e{i}" for i in (0, 1, 2, 4, 5)] == [m["event"] for m in strict.messages]
        assert {"refused": 1} == read_json(os.path.join(folder, DROPPED_NAME))
        assert read_status(folder).dropped == {"refused": 1}


def test_old_events_and_a_full_spool_are_dropped_oldest_first(tmp_path: Path) -> None:
    """A segment past the age bound is dropped as expired, then the oldest segments as over_size
    until the spool fits its size bound; only the newest events are delivered."""
    folder = str(tmp_path / "spool")
    with CaptureServer() as capture:
        spool_events(folder, capture.url, 2)
        [old] = segments(folder)
        ancient = old.name.replace(old.name[4:24], f"{(time.time() - 30 * 86400) * 1e9:020.0f}")
        os.rename(old.path, os.path.join(folder, ancient))
        spool_events(folder, capture.url, 50)
        spool_events(folder, capture.url, 3, max_bytes=2_000)
        report = run_sender(folder)
        assert report.dropped == {"expired": 2, "over_size": 50}
        assert ["e0", "e1", "e2"] == [m["event"] for m in capture.messages]
        assert read_status(folder).dropped == {"expired": 2, "over_size": 50}


def test_a_torn_last_line_is_counted_and_the_rest_delivered(
    tmp_path: Path, server: CaptureServer
) -> None:
    """A half-written last line is counted damaged; the whole lines before it are delivered."""
    folder = str(tmp_path / "spool")
    spool_events(folder, server.url, 3)
    [segment] = segments(folder)
    with open(segment.path, "ab") as torn:
        torn.write(b'{"type":"capture","uuid":"cut off by a power c')
    report = run_sender(folder)
    assert report.delivered == 3
    assert report.dropped == {"damaged": 1}
    assert segments(folder) == []


@pytest.mark.processes
def test_one_sender_at_a_time(tmp_path: Path, server: CaptureServer) -> None:
    """While another process holds the spool's lease a run says busy, no sender is spawned and
    nothing is sent; the holder's death frees the lease and the next run delivers."""
    from idstitch.store._lock import ProcessLock

    folder = str(tmp_path / "spool")
    spool_events(folder, server.url, 2)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from idstitch.store._lock import ProcessLock; "
                "lock = ProcessLock(sys.argv[1]); lock.acquire(None); print('held', flush=True); "
                "time.sleep(60)"
            ),
            os.path.join(folder, "sender.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert sender_running(folder)
        assert run_sender(folder).result == "busy"
        assert spawn_sender(folder) is None
        assert server.messages == []
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    lease = ProcessLock(os.path.join(folder, "sender.lock"))
    assert lease.acquire(0)  # the holder's death let go of the lease
    lease.release()
    assert run_sender(folder).delivered == 2


@pytest.mark.processes
def test_a_killed_sender_resends_at_most_the_batch_in_flight(tmp_path: Path) -> None:
    """B7: a detached sender SIGKILLed while PostHog holds its second batch (taken, not yet
    answered, so no progress recorded for it): the next run delivers every event, and exactly
    that batch's 100 events arrive twice; the first batch, recorded, is not resent."""
    # The server answers the first batch, keeps the second and holds its answer 120 s: the
    # sender (whose request gives up after 10 s) is killed as soon as the batch is held.
    with CaptureServer(delay_seconds=120, delay_after=1) as far:
        folder = str(tmp_path / "spool")
        uuids = spool_events(folder, far.url, 250)
        pid = spawn_sender(folder)
        assert pid is not None
        assert far.wait_delayed()
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert -signal.SIGKILL == os.waitstatus_to_exitcode(status)
        taken = [[m["uuid"] for m in batch["batch"]] for batch in far.batches]
        assert [uuids[:100], uuids[100:200]] == taken  # the first answered, the second held
        assert 150 == read_status(folder).waiting  # the held batch is not marked sent
        far.release()
        assert "drained" == run_sender(folder).result
        expected = {uuid: 2 if uuid in taken[1] else 1 for uuid in uuids}
        assert expected == far.uuids()


@pytest.mark.processes
def test_the_last_host_is_not_left_behind_by_a_finishing_sender(
    tmp_path: Path, server: CaptureServer
) -> None:
    """16 hosts spool into one state dir at once: every event arrives once, none deleted by a
    sender that read a segment before its writer finished, none left for the next command."""
    # The library's own budget: the hosts' 2 s could end a run starved of CPU before its
    # last look, and what that leaves waits for the next command (by design).
    environ = dict(os.environ, HOST_SENDER_BUDGET="30")
    environ.pop("DO_NOT_TRACK", None)
    hosts = [
        subprocess.Popen(
            [sys.executable, str(HOST), str(tmp_path / "state"), server.url, "events:5"],
            stdout=subprocess.PIPE,
            env=environ,
            text=True,
        )
        for _ in range(16)
    ]
    folders = set()
    for host in hosts:
        out, _ = host.communicate(timeout=60)
        assert host.returncode == 0
        folders.add(json.loads(out.splitlines()[-1])["folder"])
    [folder] = folders
    wait_drained(folder)
    counts = server.uuids()
    assert len(counts) == 16 * 6
    assert set(counts.values()) == {1}


# --------------------------------------------------------------- R9 and R14


def test_a_spool_that_cannot_take_the_alias_is_an_enqueue_failure(tmp_path: Path) -> None:
    """R9: with a file in place of spool/ the alias is an enqueue failure, logged, and the identity
    stays anonymous; once the spool can take it, the next process aliases."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "spool").write_text("not a folder")
    sink = SpoolSink("phc_test", host="http://127.0.0.1:9")
    stitch = IdentityStitch.open(state_dir=state, runtime="persistent", sink=sink)
    assert stitch.observe_authenticated_response("user-1")
    assert stitch.state is State.ANONYMOUS  # the alias was not queued: un-stashed (R9)
    kinds = [record["kind"] for record in FileLog(state / "identity.jsonl").records()]
    assert kinds[-1] == "enqueue_failure"
    (state / "spool").unlink()
    later = IdentityStitch.open(
        state_dir=state, runtime="persistent", sink=SpoolSink("phc_test", host="http://x")
    )
    assert later.observe_authenticated_response("user-1")
    assert later.state is State.ALIASED
    assert [e["type"] for e in spooled(str(state / "spool"))] == ["alias"]
    assert replay(FileLog(state / "identity.jsonl").records()).state is State.ALIASED


@pytest.mark.processes
def test_opting_out_deletes_what_the_spool_holds(tmp_path: Path) -> None:
    """R14: a run with DO_NOT_TRACK deletes the four events waiting, spools nothing and starts no
    sender; a later sender run sends nothing."""
    port = free_port()
    report = run_host(tmp_path / "state", f"http://127.0.0.1:{port}", "events:3")
    wait_senders_gone(report)
    assert read_status(report["folder"]).waiting == 4
    opted = run_host(
        tmp_path / "state", f"http://127.0.0.1:{port}", "events:3", env={"DO_NOT_TRACK": "1"}
    )
    assert opted["mode"] == "off"
    assert opted["senders"] == []
    assert read_status(report["folder"]).waiting == 0
    with CaptureServer(port=port) as back:
        run_sender(report["folder"])
        assert back.messages == []


@pytest.mark.processes
def test_a_dry_run_leaves_earlier_events_for_a_run_that_sends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """IDSTITCH_DEBUG=1 prints instead of sending, and starts no sender for the four events an
    earlier offline run left in the spool: they wait for a run that sends."""
    port = free_port()
    report = run_host(tmp_path / "state", f"http://127.0.0.1:{port}", "events:3")
    wait_senders_gone(report)
    os.unlink(os.path.join(report["folder"], RETRY_NAME))  # no pause: a sender would start
    sink = SpoolSink("phc_test", host=f"http://127.0.0.1:{port}", env={"IDSTITCH_DEBUG": "1"})
    stitch = IdentityStitch.open(state_dir=tmp_path / "state", runtime="persistent", sink=sink)
    stitch.capture("looked")
    stitch.close(timeout=1)
    assert ([], 4, 1) == (
        sink.sender_pids,
        read_status(report["folder"]).waiting,
        capsys.readouterr().err.count("idstitch would send looked"),
    )


def test_a_sender_never_spools_or_starts_senders(tmp_path: Path) -> None:
    """With IDSTITCH_SENDER=1 (the sender's own environment) the sink is off: capture queues
    nothing, no spool folder or segment is written, and closing starts no sender."""
    sink = SpoolSink("phc_test", host="http://127.0.0.1:9", env={"IDSTITCH_SENDER": "1"})
    stitch = IdentityStitch.open(state_dir=tmp_path / "s", runtime="persistent", sink=sink)
    assert sink.mode == "off"
    assert not stitch.capture("anything")
    stitch.close()
    assert (None, False, []) == (
        sink.folder,
        (tmp_path / "s" / "spool").exists(),
        sink.sender_pids,
    )


def test_client_options_must_be_json() -> None:
    """SpoolSink refuses a client option that is not a JSON scalar (the sender reads it from the
    spool)."""
    with pytest.raises(TypeError, match="JSON scalar"):
        SpoolSink("phc", on_error=print)


def test_an_unknown_delivery_mode_is_refused() -> None:
    """SpoolSink refuses a delivery= other than auto, detached and in_process, naming them."""
    with pytest.raises(ValueError, match="delivery='sometimes'; use 'auto', 'detached' or"):
        SpoolSink("phc", delivery="sometimes")


def test_a_detached_sender_is_only_used_where_it_can_outlive_the_host(tmp_path: Path) -> None:
    """can_outlive: a sender can outlive the host outside a container, and inside one unless the
    host is PID 1 or a child of the container's init (tini, docker --init)."""
    container = tmp_path / "root"
    container.mkdir()
    (container / ".dockerenv").touch()
    assert can_outlive(str(tmp_path), pid=40, ppid=1)  # a host's child of init: detached
    assert not can_outlive(str(container), pid=1, ppid=0)  # the container's first process
    assert not can_outlive(str(container), pid=7, ppid=1)  # under tini or docker --init
    assert can_outlive(str(container), pid=7, ppid=3)  # under a shell in the container


@pytest.mark.processes
def test_the_sink_delivers_detached_where_a_sender_can_outlive_the_host(tmp_path: Path) -> None:
    """delivery="auto": a host that is a child of another process (here, of the test) picks the
    detached sender both outside a container and inside one (under a shell); "in_process" is
    taken as told. (A host that is PID 1 or init's child cannot be set up portably: an orphan
    goes to the nearest subreaper, a PID namespace needs privileges; can_outlive covers it.)"""
    container = tmp_path / "root"
    container.mkdir()
    (container / ".dockerenv").touch()
    script = (
        "import json, sys\n"
        "from idstitch.adapters.sinks import SpoolSink\n"
        "from idstitch.machine import IdentityStitch\n"
        "modes = []\n"
        "for index, (root, delivery) in enumerate(json.loads(sys.argv[2])):\n"
        "    sink = SpoolSink('phc_test', host='http://127.0.0.1:9', delivery=delivery)\n"
        "    IdentityStitch.open(\n"
        "        state_dir=f'{sys.argv[1]}/{index}', runtime='persistent', sink=sink, root=root\n"
        "    )\n"
        "    modes.append(sink.mode)\n"
        "print(json.dumps(modes))\n"
    )
    cases = [[str(tmp_path), "auto"], [str(container), "auto"], [str(container), "in_process"]]
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state"), json.dumps(cases)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert ["detached", "detached", "in_process"] == json.loads(done.stdout)


# ------------------------------------------------------------------ the reports


@pytest.mark.processes
def test_show_and_doctor_report_the_spool(tmp_path: Path) -> None:
    """`idstitch show` and `doctor` (text and JSON) report the events waiting and the last run's
    failure; after delivery, the empty spool and the last delivery."""
    from support.audit import in_process, json_lines

    port = free_port()
    report = run_host(tmp_path / "state", f"http://127.0.0.1:{port}", "events:2")
    wait_senders_gone(report)
    shown = in_process("show", "--state-dir", str(tmp_path / "state"))
    assert shown.code == 0
    [row] = [line for line in shown.stdout.splitlines() if line.lstrip().startswith("spool")]
    assert "3 event(s) waiting since" in row
    assert "last sender run failed (ConnectionError)" in row
    doctor = in_process("doctor", str(tmp_path / "state"), "--json")
    [found] = json_lines(doctor.stdout)
    spool = found["spool"]
    assert (3, "failed", None) == (
        spool["waiting"],
        spool["last_run"]["result"],
        spool["last_run"]["last_delivery"],
    )
    with CaptureServer(port=port) as back:
        assert run_sender(report["folder"]).delivered == 3
        assert len(back.messages) == 3
    after = in_process("doctor", str(tmp_path / "state"))
    [row] = [line for line in after.stdout.splitlines() if line.lstrip().startswith("spool")]
    assert "empty; last sender run drained, last delivery 20" in row


@pytest.mark.processes
def test_a_host_that_never_closes_still_starts_a_sender_at_exit(
    tmp_path: Path, server: CaptureServer
) -> None:
    """A host that captures and never closes or flushes still starts a sender when its process ends
    (atexit), which delivers the event."""
    script = (
        "import sys\n"
        "from idstitch.adapters.sinks import SpoolSink\n"
        "from idstitch.machine import IdentityStitch\n"
        "sink = SpoolSink('phc_test', host=sys.argv[2], sender_budget=2)\n"
        "stitch = IdentityStitch.open(state_dir=sys.argv[1], runtime='persistent', sink=sink)\n"
        "assert stitch.capture('forgotten')\n"
        "print(sink.folder)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state"), server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    wait_drained(done.stdout.strip())
    assert ["forgotten"] == [m["event"] for m in server.wait_for(1)]


def test_a_sink_without_a_key_spools_nothing(tmp_path: Path) -> None:
    """A SpoolSink with an empty key spools nothing and starts no sender; a login is stamped, not
    aliased, so the device's one alias is not spent (R3)."""
    sink = SpoolSink("", host="http://127.0.0.1:9")
    stitch = IdentityStitch.open(state_dir=tmp_path / "s", runtime="persistent", sink=sink)
    assert not stitch.capture("nowhere")
    assert stitch.observe_authenticated_response("user-1")
    assert stitch.state is State.STAMPED  # never aliased: a keyed build may alias later
    stitch.close()
    assert not (tmp_path / "s" / "spool").exists()
    assert sink.sender_pids == []


@pytest.mark.processes
def test_a_full_disk_refuses_events_and_breaks_nothing(
    tmp_path: Path, server: CaptureServer
) -> None:
    """R15: on a full disk (no file may grow past 64 bytes) capture returns False, the command exits
    0 with nothing on stderr and keeps its user."""
    first = run_host(tmp_path / "state", server.url, "response:user-1")
    wait_drained(first["folder"])
    full = run_host(
        tmp_path / "state",
        server.url,
        "capture:a",
        "capture:b",
        env={"HOST_FSIZE_LIMIT": "64"},
    )
    assert full["captured"] == [False, False]  # not queued, said so; no traceback, exit 0
    assert full["distinct_id"] == "user-1"
    assert read_status(first["folder"]).waiting == 0


def test_a_name_that_does_not_resolve_ends_the_run_soon(tmp_path: Path) -> None:
    """An unresolvable host ends the run after four unanswered tries; both events are kept."""
    folder = str(tmp_path / "spool")
    spool_events(folder, "http://posthog.example.invalid", 2)
    report = run_sender(folder, sleep=lambda _: None)
    assert (report.result, report.error, report.tries) == ("failed", "ConnectionError", 4)
    assert read_status(folder).waiting == 2


def test_a_run_sweeps_what_a_killed_sender_left(tmp_path: Path, server: CaptureServer) -> None:
    """A run removes a killed sender's temporary file and a .sent progress file without its segment,
    leaving only sender.json and the lease."""
    folder = tmp_path / "spool"
    spool_events(str(folder), server.url, 1)
    (folder / ".tmp-sender.json-123-abcdef").write_text("{")
    (folder / "seg-00000000000000000001-1-aaaaaa.jsonl.sent").write_text("10")
    assert run_sender(str(folder)).delivered == 1
    assert sorted(p.name for p in folder.iterdir()) == ["sender.json", "sender.lock"]


# ------------------------------------------------------- an alias lost after it was spooled


def log_kinds(state: Path) -> list[str]:
    return [record["kind"] for record in FileLog(state / "identity.jsonl").records()]


@pytest.mark.processes
def test_an_alias_posthog_refuses_is_recorded_and_made_again(tmp_path: Path) -> None:
    """An alias PostHog refuses for good is dropped, counted and logged as alias_dropped; the next
    response aliases the same device again, and verify and persons accept the log."""
    from support.audit import in_process

    state = tmp_path / "state"
    with CaptureServer(poison="$create_alias") as strict:
        report = run_host(state, strict.url, "response:user-1")
        wait_drained(report["folder"])
        assert strict.events("$create_alias") == []
        assert ["cli_command_executed"] == [m["event"] for m in strict.messages]
        assert log_kinds(state)[-1] == "alias_dropped"
        [dropped] = list(FileLog(state / "identity.jsonl").records())[-1:]
        assert (dropped["user_id"], dropped["reason"]) == ("user-1", "refused: HTTP 400")
        assert read_status(report["folder"]).dropped == {"refused": 1}
        strict.poison = None
        again = run_host(state, strict.url, "response:user-1")
        wait_drained(again["folder"])
        [alias] = strict.events("$create_alias")
    assert (alias["distinct_id"], alias["properties"]["alias"]) == ("user-1", dropped["device_id"])
    assert replay(FileLog(state / "identity.jsonl").records()).state is State.ALIASED
    assert in_process("verify", str(state / "identity.jsonl")).code == 0
    persons = in_process("persons", str(state / "identity.jsonl"))
    assert persons.code == 0


@pytest.mark.processes
def test_an_alias_that_expired_in_the_spool_is_recorded(tmp_path: Path) -> None:
    """An alias that aged out in the spool is dropped as expired with its command's event and logged
    as alias_dropped; the identity replays to stamped."""
    state = tmp_path / "state"
    port = free_port()
    report = run_host(state, f"http://127.0.0.1:{port}", "response:user-1")
    wait_senders_gone(report)
    [segment] = segments(report["folder"])
    old = f"{(time.time() - 30 * 86400) * 1e9:020.0f}"
    os.rename(segment.path, os.path.join(report["folder"], f"seg-{old}-1-abcdef.jsonl"))
    with CaptureServer(port=port) as back:
        run_sender(report["folder"])
        assert back.messages == []
    assert read_status(report["folder"]).dropped == {"expired": 2}
    assert log_kinds(state)[-1] == "alias_dropped"
    assert replay(FileLog(state / "identity.jsonl").records()).state is State.STAMPED


def test_events_of_many_commands_share_a_request(tmp_path: Path, server: CaptureServer) -> None:
    """The segments of 30 commands to one project go in one batch; a segment to another project goes
    in a request of its own, and the spool is left empty."""
    folder = str(tmp_path / "spool")
    for _ in range(30):
        spool_events(folder, server.url, 2)
    spool_events(folder, server.url, 1, api_key="another project")
    report = run_sender(folder, batch_size=100)
    assert report.delivered == 61
    assert [(60, "k"), (1, "another project")] == [
        (len(batch["batch"]), batch["api_key"]) for batch in server.batches
    ]
    assert segments(folder) == []


@pytest.mark.processes
def test_opening_with_a_spool_sink_loads_no_delivery_module(tmp_path: Path) -> None:
    """The sink is attached at open without reading the spool or importing its modules: a
    steady start stays what B2 measures; they load with the first event."""
    script = (
        "import sys\n"
        "from idstitch.adapters.sinks import SpoolSink\n"
        "from idstitch.machine import IdentityStitch\n"
        "sink = SpoolSink('phc_test', host='http://127.0.0.1:9')\n"
        "stitch = IdentityStitch.open(state_dir=sys.argv[1], runtime='persistent', sink=sink)\n"
        "stitch.distinct_id\n"
        "before = sorted(m for m in sys.modules if m.startswith('idstitch.delivery'))\n"
        "stitch.capture('first')\n"
        "after = 'idstitch.delivery._spool' in sys.modules\n"
        "print(before, after, sink.folder == sys.argv[1] + '/spool')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=bare_environment(),
    )
    assert "[] True True" == done.stdout.strip()


@pytest.mark.processes
def test_a_fork_while_another_thread_spools_does_not_hang_the_child(tmp_path: Path) -> None:
    """R15: a fork while another thread holds the sink's lock leaves the child able to capture to
    the spool without hanging, and the child starts no sender."""
    import threading

    sink = SpoolSink("phc_test", host="http://127.0.0.1:9", sender_budget=0.5)
    stitch = IdentityStitch.open(state_dir=tmp_path / "s", runtime="persistent", sink=sink)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with sink._lock:  # a capture in flight in another thread at the fork
            holding.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    assert holding.wait(10)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        signal.alarm(10)  # a hang fails the test instead of holding it
        os._exit(0 if stitch.capture("in the child") and sink.sender_pids == [] else 1)
    release.set()
    worker.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [e["event"] for e in spooled(str(tmp_path / "s" / "spool"))] == ["in the child"]


def test_a_segment_is_read_from_an_offset_and_up_to_a_limit(tmp_path: Path) -> None:
    """Segment.read_from gives the bytes from an offset, up to a limit if given; none at the end."""
    folder = str(tmp_path / "spool")
    spool_events(folder, "http://127.0.0.1:9", 3)
    [segment] = segments(folder)
    whole = Path(segment.path).read_bytes()
    assert (whole, whole[7:], whole[:10], whole[7:12], b"") == (
        segment.read_from(0),
        segment.read_from(7),
        segment.read_from(0, limit=10),
        segment.read_from(7, limit=5),
        segment.read_from(len(whole), limit=5),
    )


def test_a_segment_with_a_damaged_header_is_counted_and_the_rest_delivered(
    tmp_path: Path, server: CaptureServer
) -> None:
    """A segment with a damaged header is dropped, its event counted damaged; others delivered."""
    folder = tmp_path / "spool"
    spool_events(str(folder), server.url, 2)
    damaged = folder / f"seg-{time.time_ns():020d}-1-abcdef.jsonl"
    damaged.write_bytes(b'{"type":"hea\x00\n{"type":"capture"}\n')  # its header, one event
    report = run_sender(str(folder))
    assert (report.delivered, report.dropped) == (2, {"damaged": 1})
    assert segments(str(folder)) == []
