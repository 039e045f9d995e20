"""``idstitch demo``: the seed's scenarios end to end, against a capture server on 127.0.0.1.

Each scenario drives the real identity service (``IdentityStitch``) with
the real PostHog client (``PostHogSink``, ``posthog.Posthog`` inside)
sending to a :class:`CaptureServer` that listens on the loopback interface
only; no API key and no network are needed. Per scenario it prints the
log's timeline, what the server received, the verify result, the person
graph PostHog would build, and the checks that prove the rule held.

The failed enqueue is a real one: the client's ``before_send`` hook drops
the first ``$create_alias``, so ``Posthog.alias()`` returns ``None``
exactly as it does for a full queue. The concurrent scenario starts two
real processes on one state dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from idstitch.adapters.capture_server import CaptureServer
from idstitch.adapters.runtime import Runtime
from idstitch.adapters.sinks import PostHogSink
from idstitch.events import START, Checkpoint, encode_record
from idstitch.machine import IdentityStitch
from idstitch.store import LOG_NAME

from ._render import Output
from ._reports import persons_report, replay_report, verify_report

__all__ = ["SCENARIOS", "run_demo", "worker_main"]

#: Any key will do: the capture server does not check it.
DEMO_KEY: Final = "phc_idstitch_demo"
FLUSH_TIMEOUT: Final = 5.0


@dataclass(slots=True)
class Run:
    """What a scenario leaves behind: its log, the server's messages and its checks."""

    log: Path
    server: CaptureServer
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def check(self, description: str, ok: bool) -> None:
        """Record one expectation and whether it held."""
        self.checks.append((description, ok))


@dataclass(frozen=True, slots=True)
class Scenario:
    """One story from the seed: a key, a title, the rules it shows and what it does."""

    key: str
    title: str
    rules: str
    story: str
    play: Callable[[Path, CaptureServer], Run]


def _sink(server: CaptureServer, **options: Any) -> PostHogSink:  # noqa: ANN401
    return PostHogSink(DEMO_KEY, host=server.url, env={}, capture_mode="v0", **options)


def _open(
    state_dir: Path,
    sink: PostHogSink,
    runtime: Runtime | None = Runtime.PERSISTENT,
    env: Mapping[str, str] | None = None,
    **options: Any,  # noqa: ANN401
) -> IdentityStitch:
    return IdentityStitch.open(
        state_dir=state_dir, runtime=runtime, sink=sink, env=dict(env or {}), **options
    )


def _aliases(server: CaptureServer) -> list[tuple[str, str]]:
    return [
        (m["distinct_id"], m["properties"].get("alias")) for m in server.events("$create_alias")
    ]


def _settle(server: CaptureServer, count: int) -> None:
    """Wait for ``count`` messages, then a moment more so that extra ones would show."""
    server.wait_for(count, timeout=FLUSH_TIMEOUT)
    time.sleep(0.05)


def _first_login(folder: Path, server: CaptureServer) -> Run:
    state = folder / "state"
    sink = _sink(server)  # one client stands for the three runs' clients
    first = _open(state, sink)
    with first.command("projects list"):  # before login: under the device, personless
        pass
    device = first.device_id
    second = _open(state, sink)
    with second.command("db push"):
        second.observe_authenticated_response("user-a")
    third = _open(state, sink)
    with third.command("db pull"):  # steady state: the same user again changes nothing
        third.observe_authenticated_response("user-a")
    _settle(server, 4)
    run = Run(state / LOG_NAME, server)
    run.check(
        "exactly one $create_alias: user-a <- this device", [("user-a", device)] == _aliases(server)
    )
    commands = [m["distinct_id"] for m in server.events("cli_command_executed")]
    run.check(
        "the first command went under the device, the next two under user-a",
        [device, "user-a", "user-a"] == commands,
    )
    return run


def _ci_run(folder: Path, server: CaptureServer) -> Run:
    state = folder / "state"
    audit = folder / "ci-audit.jsonl"
    stitch = _open(state, _sink(server), runtime=None, env={"CI": "true"}, audit_log=audit)
    with stitch.command("db push"):
        stitch.observe_authenticated_response("user-a")
    _settle(server, 1)
    run = Run(audit, server)
    run.check("detected as ephemeral (CI=true)", Runtime.EPHEMERAL is stitch.runtime)
    run.check("no $create_alias sent", _aliases(server) == [])
    commands = [m["distinct_id"] for m in server.events("cli_command_executed")]
    run.check("the command event is attributed to user-a", commands == ["user-a"])
    run.check("no state dir was written", not state.exists())
    return run


def _stale_identity(folder: Path, server: CaptureServer) -> Run:
    state = folder / "state"
    sink = _sink(server)
    first = _open(state, sink)
    device = first.device_id
    with first.command("login"):
        first.login("user-a")
    second = _open(state, sink)
    with second.command("db push"):  # the disk says user-a, the live token says user-b
        second.observe_authenticated_response("user-b")
    _settle(server, 3)
    run = Run(state / LOG_NAME, server)
    run.check("one $create_alias only, for user-a", [("user-a", device)] == _aliases(server))
    commands = [m["distinct_id"] for m in server.events("cli_command_executed")]
    run.check(
        "user-b's command is attributed to user-b, without an alias",
        commands == ["user-a", "user-b"],
    )
    return run


def _logout_login(folder: Path, server: CaptureServer) -> Run:
    state = folder / "state"
    stitch = _open(state, _sink(server))
    first_device = stitch.device_id
    with stitch.command("login"):
        stitch.login("user-a")
    with stitch.command("logout"):
        stitch.logout()
    second_device = stitch.device_id
    with stitch.command("login"):
        stitch.login("user-b")
    _settle(server, 5)
    run = Run(state / LOG_NAME, server)
    run.check("logout rotated the device id", first_device != second_device)
    expected = [("user-a", first_device), ("user-b", second_device)]
    run.check("each user aliased to their own device", expected == _aliases(server))
    return run


class _DropFirstAlias:
    """A ``before_send`` hook: the client refuses the first ``$create_alias`` (returns None)."""

    def __init__(self) -> None:
        self.dropped = 0

    def __call__(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if message.get("event") == "$create_alias" and not self.dropped:
            self.dropped += 1
            return None
        return message


def _failed_enqueue(folder: Path, server: CaptureServer) -> Run:
    state = folder / "state"
    hook = _DropFirstAlias()
    stitch = _open(state, _sink(server, before_send=hook))
    device = stitch.device_id
    with stitch.command("db push"):
        stitch.observe_authenticated_response("user-a")  # the client refuses the alias
        after_failure = stitch.state.value
        stitch.login("user-a")  # the login command retries
    _settle(server, 2)
    run = Run(state / LOG_NAME, server)
    run.check("the client refused the first alias", hook.dropped == 1)
    run.check(
        "the refusal un-stashed the identity (back to anonymous)", after_failure == "anonymous"
    )
    run.check(
        "the retry delivered exactly one $create_alias", [("user-a", device)] == _aliases(server)
    )
    return run


def _concurrent(folder: Path, server: CaptureServer) -> Run:
    state = folder / "state"
    _open(state, _sink(server))  # installed and run once: the log holds its genesis
    go = folder / "go"
    worker = "import sys; from idstitch.audit._demo import worker_main; worker_main(sys.argv[1:])"
    processes = [
        subprocess.Popen(  # noqa: S603 - this Python, running this package
            [sys.executable, "-c", worker, str(state), server.url, "user-a", str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdout is not None
        process.stdout.readline()  # "ready": the state dir is open
    go.touch()
    codes = [process.wait(timeout=60) for process in processes]
    for process in processes:
        assert process.stdout is not None
        process.stdout.close()
    _settle(server, 3)
    run = Run(state / LOG_NAME, server)
    run.check("both processes exited 0", codes == [0, 0])
    run.check("exactly one $create_alias between them", len(_aliases(server)) == 1)
    commands = [m["distinct_id"] for m in server.events("cli_command_executed")]
    run.check("both command events went under user-a", commands == ["user-a", "user-a"])
    return run


def worker_main(argv: list[str]) -> None:
    """One of the concurrent processes: open, say ready, wait for go, observe the user."""
    state, url, user, go = argv
    sink = PostHogSink(DEMO_KEY, host=url, env={}, capture_mode="v0")
    stitch = IdentityStitch.open(state_dir=state, runtime=Runtime.PERSISTENT, sink=sink, env={})
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.001)
    with stitch.command("db push", flush_timeout=FLUSH_TIMEOUT):
        stitch.observe_authenticated_response(user)


def _pre_fix_bug(folder: Path, server: CaptureServer) -> Run:
    """The behaviour the seed removed, written by hand: a second login re-aliases the device."""
    device = "0b7e3c1a-2f4d-4c5b-9a8e-7d6c5b4a3f21"
    at = "2026-11-27T17:00:0{}.000000Z"
    records: list[tuple[str, dict[str, object]]] = [
        ("genesis", {"device_id": device, "runtime": "persistent"}),
        (
            "login",
            {
                "device_id": device,
                "user_id": "user-a",
                "runtime": "persistent",
                "pid": 1,
                "alias": True,
            },
        ),
        ("clear", {"device_id": device, "pid": 2}),
        (
            "login",
            {
                "device_id": device,
                "user_id": "user-b",
                "runtime": "persistent",
                "pid": 3,
                "alias": True,
            },
        ),
    ]
    log = folder / "pre-fix.jsonl"
    after = START
    with log.open("wb") as f:
        for index, (kind, fields) in enumerate(records):
            line, record = encode_record(after, at=at.format(index), kind=kind, fields=fields)
            f.write(line)
            after = Checkpoint(record["seq"], record["h"], after.offset + len(line))
    sink = _sink(server)
    sink.alias(user_id="user-a", device_id=device)  # what the old code sent
    sink.alias(user_id="user-b", device_id=device)
    sink.flush(FLUSH_TIMEOUT)
    _settle(server, 2)
    run = Run(log, server)
    run.check(
        "PostHog received both aliases for the one device",
        [("user-a", device), ("user-b", device)] == _aliases(server),
    )
    return run


SCENARIOS: Final = (
    Scenario(
        "first-login",
        "Persistent first login",
        "R1, R2, R3",
        "A developer runs the CLI, then its first authenticated response names user-a: the "
        "device is aliased once; later runs with the same user change nothing.",
        _first_login,
    ),
    Scenario(
        "ci",
        "CI run",
        "R1, R2",
        "The same CLI in CI (CI=true): user-a is stamped, nothing is aliased, no state dir is "
        "written; the host asked for an audit log (audit_log=), so the run is still auditable.",
        _ci_run,
    ),
    Scenario(
        "stale-identity",
        "Stale identity",
        "R3, R4",
        "The disk says user-a, the live token says user-b: user-b is stamped without an alias.",
        _stale_identity,
    ),
    Scenario(
        "logout-login",
        "Logout, then login as another user",
        "R3, R7",
        "user-a logs in, logs out (the device id rotates), user-b logs in: each user is "
        "aliased to a device of their own.",
        _logout_login,
    ),
    Scenario(
        "failed-enqueue",
        "Failed enqueue, then retry",
        "R9",
        "The PostHog client refuses the first alias (its before_send hook drops it, so "
        "alias() returns None as for a full queue): the identity is un-stashed and the login "
        "command retries.",
        _failed_enqueue,
    ),
    Scenario(
        "concurrent",
        "Two concurrent processes",
        "R5",
        "Two processes share one state dir and see their first authenticated response at the "
        "same moment: the file lock lets exactly one alias through.",
        _concurrent,
    ),
    Scenario(
        "pre-fix",
        "For contrast: the bug the seed fixed (a hand-written log)",
        "R3",
        "Before the fix, a second user on the same device was aliased again. idstitch never "
        "writes this log; it is written by hand here to show what verify and persons catch. "
        "Its checks are about the audit, not about the library.",
        _pre_fix_bug,
    ),
)


def _received(out: Output, server: CaptureServer, scenario: str) -> None:
    if server.messages and not out.as_json:
        out.text((f"  {'event':<22}  {'distinct_id':<36}  properties", "bold"))
    for message in server.messages:
        props = message.get("properties", {})
        row = {
            "type": "received",
            "scenario": scenario,
            "event": message.get("event"),
            "distinct_id": message.get("distinct_id"),
            "alias": props.get("alias"),
            "process_person_profile": props.get("$process_person_profile"),
        }
        if out.as_json:
            out.json(row)
            continue
        notes = []
        if row["alias"] is not None:
            notes.append(f"alias={row['alias']}")
        if row["process_person_profile"] is False:
            notes.append("personless")
        out.text(f"  {row['event']:<22}  {row['distinct_id']:<36}  {'  '.join(notes)}".rstrip())
    if not server.messages and not out.as_json:
        out.text("  nothing")


def _play(scenario: Scenario, folder: Path, out: Output, number: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    with CaptureServer() as server:
        run = scenario.play(folder, server)
    tagged = Output(out.stream, as_json=out.as_json, fields={"scenario": scenario.key})
    if out.as_json:
        out.json(
            {
                "type": "scenario",
                "scenario": scenario.key,
                "title": scenario.title,
                "rules": scenario.rules,
                "story": scenario.story,
                "log": str(run.log),
            }
        )
    else:
        out.text((f"== {number}. {scenario.title} ({scenario.rules})", "bold"))
        out.text(scenario.story)
        out.text("")
        out.text((f"timeline of {run.log.name}", "bold"))
    replay_report(str(run.log), tagged)
    if not out.as_json:
        out.text("")
        out.text(("what PostHog received", "bold"))
    _received(out, run.server, scenario.key)
    if not out.as_json:
        out.text("")
        out.text(("verify", "bold"))
    verify_report(str(run.log), tagged)
    if not out.as_json:
        out.text("")
        out.text(("persons", "bold"))
    persons_report(str(run.log), tagged)
    if not out.as_json:
        out.text("")
        out.text(("checks", "bold"))
    for description, ok in run.checks:
        if out.as_json:
            out.json({"type": "check", "scenario": scenario.key, "check": description, "ok": ok})
        else:
            out.text(("  ok    " if ok else "  FAIL  ", "green" if ok else "bold red"), description)
    if not out.as_json:
        out.text("")
    return all(ok for _, ok in run.checks)


def run_demo(out: Output, *, keep: str | None = None) -> int:
    """Play every scenario; 0 when every check held, 1 otherwise."""
    if keep is not None:
        root = Path(keep)
        root.mkdir(parents=True, exist_ok=True)
        return _run_all(root, out)
    with tempfile.TemporaryDirectory(prefix="idstitch-demo-") as folder:
        return _run_all(Path(folder), out)


def _run_all(root: Path, out: Output) -> int:
    failed = [
        scenario.key
        for number, scenario in enumerate(SCENARIOS, start=1)
        if not _play(scenario, root / scenario.key, out, number)
    ]
    if out.as_json:
        out.json({"type": "summary", "scenarios": len(SCENARIOS), "failed": failed})
    elif failed:
        out.text(("demo failed:", "bold red"), f" checks did not hold in {', '.join(failed)}")
    else:
        out.text(("demo ok:", "bold green"), f" {len(SCENARIOS)} scenarios, every check held.")
    return 1 if failed else 0
