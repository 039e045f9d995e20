"""B6, the telemetry tax of a click CLI, and B7, delivery after an outage.

B6 runs the click CLI of ``_click_cli.py`` (one command, ``@stitch.command``,
a :class:`SpoolSink`) with telemetry on and with ``DO_NOT_TRACK=1``,
interleaved, in fresh interpreters, against a PostHog stand-in in each
network condition of :data:`CONDITIONS`. The two halves use state dirs of
their own (an opted-out run deletes what the spool holds: sharing one would
delete the other half's events). Before every timed run the bench waits
until each sender a run started has exited, or has run for
:data:`SETTLE_SECONDS`: by then it is past its interpreter's start and the
import of ``posthog`` (its only work that takes a CPU) and only waits on the
network. So a timed run measures the command, not a sender still busy on
one of this machine's two cores; the ``back to back`` row does not wait, as
a script that runs commands in a row would not. Between conditions every
sender still running is killed, so that none of them bleeds into the next.

B7 spools commands while PostHog is down (a port nothing listens on), from
many CLIs at once on one state dir, brings a capture server up on that
port, starts a sender, SIGKILLs it while PostHog holds the answer to a
batch it already took, starts another and counts what arrived.

Senders are found by their command line in ``/proc`` (Linux).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from idstitch.adapters.capture_server import CaptureServer
from idstitch.delivery import read_status
from idstitch.delivery._spool import segments
from idstitch.store import SPOOL_NAME

from bench._process import child_env
from bench._report import median, percentile

__all__ = [
    "BACK_TO_BACK",
    "CONDITIONS",
    "RUNTIMES",
    "Senders",
    "delivery",
    "free_port",
    "phases",
    "telemetry_tax",
]

#: The click CLI both bars run.
CLI = Path(__file__).resolve().parent / "_click_cli.py"

#: PostHog as the command finds it: its name and how the tables say it.
CONDITIONS = {
    "reachable": "PostHog reachable",
    "latency": "reachable, 300 ms answers",
    "refused": "connection refused",
    "hanging": "PostHog hangs",
    "dns": "DNS failure",
}
#: The extra pass of the persistent runtime that does not wait for senders between runs.
BACK_TO_BACK = "back to back"

#: The runtimes measured: the bar's (persistent), then two beside it.
RUNTIMES = ("persistent", "ephemeral", "container")

#: How long a sender may run before the next timed run starts anyway (see the module doc).
SETTLE_SECONDS = 1.5
#: A name that can never resolve (RFC 2606).
UNRESOLVABLE = "http://posthog.invalid"


def free_port() -> int:
    """A loopback port nothing listens on (a connection to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Senders:
    """The detached senders of the spools under ``root``, found by their command line."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.seen: dict[int, float] = {}

    def running(self) -> list[int]:
        """Their pids (an exited one's command line is empty: it is not counted)."""
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"idstitch.delivery" in argv[1:3] and any(
                arg.startswith(self.root.encode()) for arg in argv[3:4]
            ):
                found.append(int(entry.name))
        return found

    def settle(self, seconds: float = SETTLE_SECONDS) -> None:
        """Wait until each sender has exited or has run for ``seconds`` since first seen."""
        while True:
            now = time.monotonic()
            running = self.running()
            if all(now - self.seen.setdefault(pid, now) >= seconds for pid in running):
                return
            time.sleep(0.01)

    def wait(self, timeout: float) -> bool:
        """Wait until none runs (at most ``timeout`` seconds); whether none does."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def kill(self) -> int:
        """SIGKILL every one still running (they hold no lease once dead); how many."""
        killed = 0
        for pid in self.running():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        if not self.wait(10):
            raise RuntimeError(f"senders under {self.root} survived SIGKILL")
        return killed


def run_command(env: dict[str, str], target: str = "prod") -> float:
    """Run the CLI's ``deploy`` once; its wall time in seconds (it must exit 0)."""
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - this interpreter, on the bench's own CLI
        [sys.executable, str(CLI), "deploy", target],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the CLI exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return elapsed


@contextmanager
def posthog(condition: str) -> Iterator[tuple[str, CaptureServer | None]]:
    """PostHog in ``condition``: the host URL to give the sink, and the capture server if any."""
    if condition == "refused":
        yield f"http://127.0.0.1:{free_port()}", None
    elif condition == "dns":
        yield UNRESOLVABLE, None
    else:
        if condition == "hanging":
            server = CaptureServer("hang", hang_seconds=120)
        else:
            server = CaptureServer(delay_seconds=0.3 if condition == "latency" else 0.0)
        with server:
            yield server.url, server


def runtime_env(runtime: str, base: dict[str, str], tmp: Path) -> dict[str, str]:
    """The environment of a run in ``runtime``: persistent, CI, or a container's first process.

    The container is stood for by ``delivery="in_process"`` (what the sink picks
    where the CLI is PID 1: nothing detached would outlive it) in an ephemeral
    runtime; a real PID-1 container cannot be started here.
    """
    env = dict(base)
    env["TMPDIR"] = str(tmp)  # an ephemeral run's spool goes there
    if runtime == "ephemeral":
        env.pop("IDSTITCH_RUNTIME", None)
        env["CI"] = "true"
    elif runtime == "container":
        env["IDSTITCH_RUNTIME"] = "ephemeral"
        env["BENCH_DELIVERY"] = "in_process"
    return env


def _spool_folders(state_dir: Path, tmp: Path) -> list[str]:
    folders = [str(state_dir / SPOOL_NAME)]
    if tmp.is_dir():
        folders += sorted(str(p) for p in tmp.iterdir() if p.name.startswith("idstitch-spool-"))
    return [folder for folder in folders if os.path.isdir(folder)]


def _events(folders: Sequence[str]) -> dict[str, int]:
    waiting = sum(read_status(folder).waiting for folder in folders)
    dropped = sum(sum(read_status(folder).dropped.values()) for folder in folders)
    return {"waiting": waiting, "dropped": dropped}


def _halves(
    folder: Path, runtime: str, url: str, halves: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """The environment of each half: a state dir and a temporary dir of its own, its variables."""
    envs = {}
    for index, (half, extra) in enumerate(halves.items()):
        (folder / f"{index}" / "tmp").mkdir(parents=True)
        base = child_env() | {
            "BENCH_STATE_DIR": str(folder / f"{index}" / "state"),
            "BENCH_POSTHOG_HOST": url,
            "BENCH_USER": f"user-{index}",  # each half's events are told apart by it
        }
        envs[half] = runtime_env(runtime, base | extra, folder / f"{index}" / "tmp")
    return envs


def _prepare(envs: dict[str, dict[str, str]], runtime: str, senders: Senders) -> int:
    """Make the state dirs, then a warm-up round; the untimed runs of each half.

    Every persistent state dir is made by a run with telemetry on (the user
    signed in once, the device aliased), so the halves differ by telemetry
    only; an ephemeral run writes no state to make.
    """
    first, *_ = envs.values()
    untimed = 1
    if runtime == "persistent":
        untimed += 1
        for env in envs.values():
            made = {name: env[name] for name in ("BENCH_STATE_DIR", "BENCH_USER")}
            run_command(first | made)
            senders.settle()
    for env in envs.values():
        run_command(env)
        senders.settle()
    return untimed


def tax_case(
    work: Path, runtime: str, condition: str, runs: int, *, wait_for_senders: bool = True
) -> dict[str, Any]:
    """One runtime in one condition: ``runs`` rounds of telemetry on and off, interleaved."""
    started = time.monotonic()
    folder = work / f"{runtime}-{condition}{'' if wait_for_senders else '-back-to-back'}"
    senders = Senders(work)
    with posthog(condition) as (url, server):
        envs = _halves(folder, runtime, url, {"on": {}, "off": {"DO_NOT_TRACK": "1"}})
        untimed = _prepare(envs, runtime, senders)
        times: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(runs):
            for half in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                if wait_for_senders:
                    senders.settle()
                times[half].append(run_command(envs[half]) * 1000)
        if server is not None and server.mode == "ok":
            senders.wait(30)  # what a reachable PostHog is sent arrives: it is counted
        killed = senders.kill()
        on_dir = Path(envs["on"]["BENCH_STATE_DIR"])
        on_folders = _spool_folders(on_dir, Path(envs["on"]["TMPDIR"]))
        events = _events(on_folders)
        # An event can be both: a bounded in-process run cut short after PostHog took its
        # batch and before the spool recorded it (the next run sends it again).
        kept = {uuid for folder in on_folders for uuid in _spooled(folder, waiting=True)}
        arrived = (
            set()
            if server is None
            else {m.get("uuid") for m in server.messages if m.get("distinct_id") == "user-0"}
        )
    on, off = times["on"], times["off"]
    # The on half's events: one per command (its untimed runs included), and the alias its
    # first run sent where the runtime aliases (persistent only: rule R2).
    expected = runs + untimed + (1 if runtime == "persistent" else 0)
    return {
        "runtime": runtime,
        "condition": condition,
        "label": CONDITIONS[condition]
        if wait_for_senders
        else f"{CONDITIONS[condition]}, " + BACK_TO_BACK,
        "runs": runs,
        "on_ms": on,
        "off_ms": off,
        "on_median": median(on),
        "off_median": median(off),
        "on_p95": percentile(on, 95),
        "off_p95": percentile(off, 95),
        "tax_median": median(on) - median(off),
        "tax_p95": percentile(on, 95) - percentile(off, 95),
        "expected": expected,
        "delivered": len(arrived),
        "waiting": events["waiting"],
        "dropped": events["dropped"],
        "lost": expected - len(arrived | kept) - events["dropped"],
        "senders_killed": killed,
        "waited_for_senders": wait_for_senders,
        "seconds": time.monotonic() - started,
    }


def telemetry_tax(
    work: Path,
    runs: int,
    context_runs: int,
    conditions: Sequence[str] = tuple(CONDITIONS),
    runtimes: Sequence[str] = RUNTIMES,
) -> list[dict[str, Any]]:
    """B6: every runtime in every condition, then the persistent reachable case back to back."""
    cases = []
    for runtime in runtimes:
        for condition in conditions:
            count = runs if runtime == "persistent" else context_runs
            cases.append(tax_case(work, runtime, condition, count))
    if "persistent" in runtimes and "reachable" in conditions:
        cases.append(tax_case(work, "persistent", "reachable", runs, wait_for_senders=False))
    return cases


# ------------------------------------------------------------ B6, phase by phase

#: Runs the CLI with the command wrapper's exit timestamped (the clock every process
#: shares): when the interpreter reached this code, when the wrapper's exit began (the
#: command's own work done) and when it ended (event spooled, sender spawned).
PROBE = """\
import os, runpy, sys, time
started = time.monotonic()
from idstitch.service import _command
command_exit = _command.Command.__exit__
def timed_exit(self, *exc):
    entered = time.monotonic()
    command_exit(self, *exc)
    os.write(2, f"{started} {entered} {time.monotonic()}\\n".encode())
_command.Command.__exit__ = timed_exit
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

#: The phases of one run (ms), as :func:`probe` measures them.
PHASES = (
    "interpreter start",
    "imports and the command",
    "the wrapper's exit",
    "process exit",
    "total",
)

#: The halves timed phase by phase: the sender spawned as the library does (at a lower
#: priority, SCHED_BATCH on Linux), against opted out.
PHASE_HALVES = {
    "on": {},
    "DO_NOT_TRACK=1": {"DO_NOT_TRACK": "1"},
}


def probe(env: dict[str, str]) -> tuple[float, ...]:
    """One run of the CLI under :data:`PROBE`: the time of each of :data:`PHASES` (ms)."""
    launched = time.monotonic()
    done = subprocess.run(  # noqa: S603 - this interpreter, on the bench's own CLI
        [sys.executable, "-c", PROBE, str(CLI), "deploy", "prod"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    ended = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"the CLI exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    started, entered, left = map(float, done.stderr.split()[-3:])
    marks = (launched, started, entered, left, ended)
    return (
        *((b - a) * 1000 for a, b in itertools.pairwise(marks)),
        (ended - launched) * 1000,
    )


def phases(work: Path, condition: str, runs: int) -> list[dict[str, Any]]:
    """Where the tax goes: each half of :data:`PHASE_HALVES`, phase by phase (medians, ms)."""
    folder = work / f"phases-{condition}"
    senders = Senders(work)
    names = list(PHASE_HALVES)
    with posthog(condition) as (url, _):
        envs = _halves(folder, "persistent", url, PHASE_HALVES)
        _prepare(envs, "persistent", senders)
        found: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
        for round_ in range(runs):
            turn = round_ % len(names)
            for name in names[turn:] + names[:turn]:
                senders.settle()
                found[name].append(probe(envs[name]))
        senders.kill()
    return [
        {
            "condition": condition,
            "label": CONDITIONS[condition],
            "half": name,
            "runs": runs,
            **{
                phase: median(values)
                for phase, values in zip(PHASES, zip(*rows, strict=True), strict=True)
            },
        }
        for name, rows in found.items()
    ]


# ------------------------------------------------------------------------- B7


def _commands(env: dict[str, str], count: int, worker: int) -> list[float]:
    return [run_command(env, f"w{worker}-{i}") for i in range(count)]


def _spooled(folder: str, *, waiting: bool = False) -> dict[str, str]:
    """The uuid and type of every event the spool holds (``waiting``: not yet delivered)."""
    import json

    found: dict[str, str] = {}
    for segment in segments(folder):
        for line in (segment.waiting if waiting else segment.read_from(0)).splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("type") in ("capture", "alias"):
                found[str(entry["uuid"])] = str(entry["type"])
    return found


def _sender(folder: str) -> subprocess.Popen[bytes]:
    env = child_env() | {"IDSTITCH_SENDER": "1"}
    return subprocess.Popen(  # noqa: S603 - this interpreter, the library's sender
        [sys.executable, "-m", "idstitch.delivery", folder],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _held(server: CaptureServer, quiet: float = 0.3, timeout: float = 30.0) -> bool:
    """Wait until nothing new arrived for ``quiet`` seconds: an answer is being held."""
    deadline = time.monotonic() + timeout
    count, since = len(server.batches), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.01)
        now = len(server.batches)
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
    return False


def delivery(work: Path, commands: int, workers: int) -> dict[str, Any]:
    """B7: ``commands`` commands from ``workers`` CLIs at once while PostHog is down, then up.

    The sender is killed once about a third of the events arrived, while
    PostHog holds the answer to a batch it already took (the worst moment:
    that batch is sent again), then another sender finishes.
    """
    state = work / "state"
    folder = str(state / SPOOL_NAME)
    port = free_port()
    env = child_env() | {
        "BENCH_STATE_DIR": str(state),
        "BENCH_POSTHOG_HOST": f"http://127.0.0.1:{port}",
    }
    senders = Senders(work)
    shares = [commands // workers + (1 if i < commands % workers else 0) for i in range(workers)]
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        times = [
            t
            for share in pool.map(_commands, [env] * workers, shares, range(workers))
            for t in share
        ]
    offline_seconds = time.monotonic() - started
    offline_killed = senders.kill()  # a sender of the outage, waiting out its backoff
    spooled = _spooled(folder)
    status = read_status(folder)
    kinds = {kind: sum(1 for k in spooled.values() if k == kind) for kind in ("capture", "alias")}
    requests_expected = len(segments(folder))
    with CaptureServer(port=port) as server:
        t0 = time.monotonic()
        first = _sender(folder)
        while len(server.messages) < len(spooled) // 3 and first.poll() is None:
            time.sleep(0.005)
        server.delay_seconds = 120  # the next answer is held: the batch is taken, not answered
        hold_started = time.monotonic()
        held = _held(server)
        in_flight = len(server.batches[-1].get("batch", [])) if server.batches else 0
        cut = len(server.batches)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        before_kill = len(server.messages)
        server.delay_seconds = 0
        server.release()
        t1 = time.monotonic()
        runs = 0
        while read_status(folder).waiting and runs < 5:
            second = _sender(folder)
            second.wait(120)
            runs += 1
        t2 = time.monotonic()
        counts = server.uuids()
        requests = len(server.batches)
    after = read_status(folder)
    arrived = set(counts)
    return {
        "commands": commands,
        "workers": workers,
        "offline_seconds": offline_seconds,
        "command_median_ms": median(times) * 1000,
        "command_p95_ms": percentile(times, 95) * 1000,
        "offline_senders_killed": offline_killed,
        "spooled": len(spooled),
        "spooled_captures": kinds["capture"],
        "spooled_aliases": kinds["alias"],
        "waiting_before": status.waiting,
        "dropped_before": dict(status.dropped),
        "segments": requests_expected,
        "killed_after_requests": cut,
        "killed_while_held": held,
        "batch_in_flight": in_flight,
        "arrived_before_kill": before_kill,
        "second_runs": runs,
        # Delivering, the hold the bench imposed and the kill left out: both senders' runs.
        "drain_seconds": (hold_started - t0) + (t2 - t1),
        "first_run_seconds": hold_started - t0,
        "held_seconds": killed_at - hold_started,
        "second_run_seconds": t2 - t1,
        "wall_seconds": t2 - t0,
        "requests": requests,
        "distinct": len(arrived),
        "all_arrived": arrived == set(spooled),
        "unknown": len(arrived - set(spooled)),
        "duplicates": sum(counts.values()) - len(counts),
        "waiting_after": after.waiting,
        "dropped_after": dict(after.dropped),
    }
