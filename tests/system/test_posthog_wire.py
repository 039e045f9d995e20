"""What reaches PostHog: the real posthog client sending to a capture server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.capture_server import CaptureServer
from idstitch.adapters.runtime import Runtime
from idstitch.adapters.sinks import PostHogSink
from idstitch.machine import IdentityStitch, State
from support.service import log_records, ticking_clock


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    """A healthy capture server for one test."""
    with CaptureServer() as srv:
        yield srv


def sink_for(srv: CaptureServer, **options: Any) -> PostHogSink:
    """A PostHogSink on the real client, pinned to the /batch/ endpoint of ``srv``."""
    return PostHogSink("phc_test_key", host=srv.url, env={}, capture_mode="v0", **options)


def open_with(
    state_dir: Path, sink: PostHogSink, runtime: Runtime | None = Runtime.PERSISTENT, **env: str
) -> IdentityStitch:
    """A service on ``state_dir`` sending through ``sink``."""
    return IdentityStitch.open(
        state_dir=state_dir, runtime=runtime, sink=sink, env=env, clock=ticking_clock()
    )


def wire(messages: list[dict[str, Any]]) -> list[tuple[str, str, Any, Any]]:
    """(event, distinct_id, properties.alias, $process_person_profile) of every message."""
    return [
        (
            m["event"],
            m["distinct_id"],
            m["properties"].get("alias"),
            m["properties"].get("$process_person_profile"),
        )
        for m in messages
    ]


def test_persistent_first_login_sends_one_alias_from_user_to_device(
    tmp_path: Path, server: CaptureServer
) -> None:
    """One $create_alias, user as distinct_id and device as alias, then captures as the user."""
    stitch = open_with(tmp_path, sink_for(server, gzip=True))
    device = stitch.device_id
    stitch.capture("cli_started")
    with stitch.command("login"):
        stitch.observe_authenticated_response("user-a")
        stitch.login("user-a")
        stitch.capture("cli_logged_in")
    assert [
        ("cli_started", device, None, False),
        ("$create_alias", "user-a", device, None),
        ("cli_logged_in", "user-a", None, None),
        ("cli_command_executed", "user-a", None, None),
    ] == wire(server.wait_for(4))
    assert [] == server.events("$identify")
    assert {"/batch/"} == set(server.paths)


def test_ci_sends_no_alias_and_captures_under_the_user(
    tmp_path: Path, server: CaptureServer
) -> None:
    """CI: zero aliases; every capture after the first response carries the user id."""
    stitch = open_with(tmp_path / "state", sink_for(server), runtime=None, CI="true")
    device = stitch.device_id
    with stitch.command("db push"):
        stitch.capture("cli_anonymous")
        stitch.observe_authenticated_response("user-a")
        stitch.capture("cli_authenticated")
    assert [
        ("cli_anonymous", device, None, False),
        ("cli_authenticated", "user-a", None, None),
        ("cli_command_executed", "user-a", None, None),
    ] == wire(server.wait_for(3))
    assert not (tmp_path / "state").exists()


def test_logout_then_login_as_another_user_aliases_the_new_device(
    tmp_path: Path, server: CaptureServer
) -> None:
    """After logout the second user's alias names the rotated device, never the first one."""
    stitch = open_with(tmp_path, sink_for(server))
    first = stitch.device_id
    stitch.login("user-a")
    stitch.logout()
    second = stitch.device_id
    stitch.login("user-b")
    stitch.close(timeout=5)
    assert [
        ("$create_alias", "user-a", first, None),
        ("$create_alias", "user-b", second, None),
    ] == (wire(server.wait_for(2)))
    assert first != second


def test_a_full_queue_unstashes_and_the_next_run_delivers_exactly_one_alias(tmp_path: Path) -> None:
    """R9 on the wire: queue full -> no alias, identity un-stashed; a retry sends exactly one."""
    with CaptureServer("hang", hang_seconds=20) as stuck:
        sink = sink_for(stuck, max_queue_size=1, flush_at=1, max_retries=0)
        stitch = open_with(tmp_path, sink)
        stitch.capture("first")  # the consumer takes it and blocks on the hung upload
        deadline = time.monotonic() + 10
        while not stuck.paths and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stuck.paths, "the first upload never reached the server"
        stitch.capture("second")  # fills the one-slot queue
        stitch.observe_authenticated_response("user-a")
        assert (State.ANONYMOUS, stitch.device_id) == (stitch.state, stitch.distinct_id)
        assert ["genesis", "response", "enqueue_failure"] == [
            r["kind"] for r in log_records(tmp_path)
        ]
        device = stitch.device_id
    with CaptureServer() as healthy:
        retry = open_with(tmp_path, sink_for(healthy))
        retry.observe_authenticated_response("user-a")
        retry.login("user-a")
        retry.close(timeout=5)
        assert [("$create_alias", "user-a", device, None)] == wire(healthy.wait_for(1))
        time.sleep(0.2)
        assert 1 == len(healthy.events("$create_alias"))


@pytest.mark.parametrize("runtime", [Runtime.PERSISTENT, Runtime.EPHEMERAL])
def test_the_post_command_event_carries_the_identity_at_its_end(
    tmp_path: Path, server: CaptureServer, runtime: Runtime
) -> None:
    """R11: cli_command_executed goes under whoever the command ended as, in every runtime."""
    stitch = open_with(tmp_path, sink_for(server), runtime=runtime)
    with stitch.command("whoami"):
        stitch.observe_authenticated_response("user-a")
    with stitch.command("logout"):
        stitch.logout()
    executed = server.wait_for(3 if runtime is Runtime.PERSISTENT else 2)
    ran = [
        (m["distinct_id"], m["properties"]["command"])
        for m in executed
        if m["event"] == "cli_command_executed"
    ]
    assert [("user-a", "whoami"), (stitch.device_id, "logout")] == ran


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_a_failing_posthog_never_holds_the_command_past_its_flush_timeout(
    tmp_path: Path, mode: str
) -> None:
    """A 500-ing or silent server: the command ends within the flush timeout plus a margin."""
    with CaptureServer(mode, hang_seconds=20) as bad:  # type: ignore[arg-type]
        stitch = open_with(tmp_path, sink_for(bad, max_retries=1))
        started = time.monotonic()
        with stitch.command("deploy", flush_timeout=1.0):
            stitch.login("user-a")
        elapsed = time.monotonic() - started
        assert elapsed < 3.0, f"the command took {elapsed:.2f}s with a 1s flush timeout"
        assert ["genesis", "login"] == [r["kind"] for r in log_records(tmp_path)]
        assert (State.ALIASED, "user-a") == (stitch.state, stitch.distinct_id)


def test_opt_out_sends_no_request_and_writes_no_file(tmp_path: Path, server: CaptureServer) -> None:
    """R14 on the wire: with DO_NOT_TRACK=1 the server receives no request at all."""
    state_dir = tmp_path / "state"
    stitch = open_with(state_dir, sink_for(server), DO_NOT_TRACK="1")
    with stitch.command("deploy"):
        stitch.capture("anything")
        stitch.observe_authenticated_response("user-a")
    stitch.close(timeout=2)
    time.sleep(0.3)
    assert ([], False) == (server.paths, state_dir.exists())


def test_the_dry_run_prints_instead_of_sending(
    tmp_path: Path, server: CaptureServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """IDSTITCH_DEBUG=1 prints what would be sent to stderr and sends nothing.

    It spends no alias and writes no record for one (runs that change nothing
    append nothing): the user is stamped, and a later run that really sends
    merges the device's history then.
    """
    sink = PostHogSink("phc_test_key", host=server.url, env={"IDSTITCH_DEBUG": "1"})
    for _ in range(3):
        stitch = open_with(tmp_path, sink)
        stitch.login("user-a")
        stitch.capture("cli_event")
        stitch.close(timeout=1)
    captured = capsys.readouterr()
    assert ("", 3) == (
        captured.out,
        captured.err.count('idstitch would send cli_event: {"distinct_id": "user-a"'),
    )
    assert "$create_alias" not in captured.err
    assert ([], State.STAMPED) == (server.paths, stitch.state)
    assert ["genesis", "login"] == [r["kind"] for r in log_records(tmp_path)]
    real = open_with(tmp_path, sink_for(server))
    real.login("user-a")
    real.close(timeout=2)
    assert [("$create_alias", "user-a", stitch.device_id, None)] == wire(server.wait_for(1))


@pytest.mark.parametrize(
    ("key", "options", "env", "sends"),
    [
        ("phc_test_key", {}, {}, True),
        ("", {}, {}, False),
        ("   ", {}, {}, False),
        ("phc_test_key", {"disabled": True}, {}, False),
        ("phc_test_key", {}, {"IDSTITCH_DEBUG": "1"}, False),
    ],
    ids=["key", "empty-key", "blank-key", "disabled", "debug-prints"],
)
def test_a_sink_without_a_key_or_disabled_says_it_sends_nothing(
    key: str, options: dict[str, Any], env: dict[str, str], sends: bool
) -> None:
    """What the real client does with such a key (drops everything) is known before it is built."""
    sink = PostHogSink(key, env=env, **options)
    assert sends is sink.sends
    if not env:  # the real client agrees: it queues nothing
        assert sends is sink.capture(distinct_id="d", event="e", properties={}, groups={})


def test_a_keyless_sink_stamps_and_writes_one_record_per_user(
    tmp_path: Path, server: CaptureServer
) -> None:
    """A dev build without a key: many responses, no alias tried, one stamp record."""
    sink = PostHogSink("", host=server.url, env={}, capture_mode="v0")
    stitch = open_with(tmp_path, sink)
    for _ in range(50):
        stitch.observe_authenticated_response("user-a")
    stitch.close(timeout=1)
    kinds = [(record["kind"], record.get("alias")) for record in log_records(tmp_path)]
    assert (State.STAMPED, [("genesis", None), ("response", False)], []) == (
        stitch.state,
        kinds,
        server.messages,
    )


_HOST = """
import atexit, sys, time
from idstitch.adapters.sinks import PostHogSink
from idstitch.machine import IdentityStitch
closed = []
# Registered before the client exists, so it runs after the client's own exit handler
# (last in, first out): it prints how long the exit handlers took after close().
atexit.register(lambda: print(f"{time.monotonic() - closed[0]:.3f}", flush=True))
sink = PostHogSink("phc_test_key", host=sys.argv[1], capture_mode="v0", env={})
stitch = IdentityStitch.open(state_dir=sys.argv[2], runtime="persistent", sink=sink, env={})
with stitch.command("deploy", flush_timeout=float(sys.argv[3])):
    stitch.login("user-a")
closed.append(time.monotonic())
"""


@pytest.mark.processes
@pytest.mark.parametrize("mode", ["error", "hang"])
def test_a_failing_posthog_adds_no_wait_at_exit_and_prints_nothing(
    tmp_path: Path, mode: str
) -> None:
    """After the bounded flush the client's exit handler does not wait again (it waited up to
    a second more), and posthog's complaints never reach the CLI's stderr."""
    with CaptureServer(mode, hang_seconds=20) as bad:  # type: ignore[arg-type]
        host = subprocess.run(
            [sys.executable, "-c", _HOST, bad.url, str(tmp_path), "0.3"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    assert (0, "") == (host.returncode, host.stderr)
    at_exit = float(host.stdout.split()[-1])
    assert at_exit < 0.5, f"the exit handlers waited {at_exit:.2f}s after close()"


def test_a_capture_server_never_entered_closes_at_once() -> None:
    """close() without __enter__ does not wait for a serve loop that never started."""
    done = threading.Event()

    def close_one() -> None:
        CaptureServer().close()
        done.set()

    threading.Thread(target=close_one, daemon=True).start()
    assert done.wait(10)
