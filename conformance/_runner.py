"""The runner: every vector against a driver, step by step, and a verdict per rule.

A vector's processes run one after the other over one fresh state dir; each
process is one driver session (a subprocess speaking the protocol of
docs/conformance.md, or idstitch's driver in this process for the
generator). Each reply is compared with the vector's expected reply, device
ids up to renaming (``D1`` binds to the first real id it meets, and no two
symbols bind to one id). Around each ephemeral or opted-out process the
runner compares the state dir before and after (R2, R14). In wire mode a
capture server receives what the driver's PostHog client sends, and each
process's messages are checked against what its steps reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "SCHEMA_VERSION",
    "WIRE_CHECKS",
    "DriverUnusableError",
    "Report",
    "VectorResult",
    "load_vectors",
    "run_vectors",
    "subprocess_sessions",
]

#: The version of the vectors' format this runner reads (``"schema"`` in each vector).
SCHEMA_VERSION = 1

#: The rows wire mode adds to the table, beside the rules.
WIRE_CHECKS = ("wire:alias-direction", "wire:person-profiles", "wire:no-identify")

#: Seconds a driver has for one reply (R15: telemetry never hangs the host).
REPLY_WAIT = 20.0

_SYMBOL = re.compile(r"D[0-9]+")
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_RULE_ORDER = re.compile(r"R([0-9]+)")


class DriverUnusableError(Exception):
    """The driver command cannot be run at all (not found, not executable, never answers)."""


class Session(Protocol):
    """One driver process: a request in, its reply out."""

    def request(self, message: dict[str, Any]) -> dict[str, Any]: ...

    def finish(self) -> str | None: ...


def load_vectors(directory: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every vector of ``directory`` (default: the vectors installed with idstitch), by name.

    Raises :class:`ValueError` naming the file for one this runner cannot read.
    """
    if directory is None:
        folder: Any = resources.files("idstitch.conformance").joinpath("vectors")
    else:
        folder = Path(directory)
    vectors = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json") or entry.name == "schema.json":
            continue
        try:
            vector = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{entry.name}: not a JSON vector ({exc})") from exc
        if not isinstance(vector, dict) or vector.get("schema") != SCHEMA_VERSION:
            raise ValueError(
                f'{entry.name}: not a version {SCHEMA_VERSION} vector (its "schema" field)'
            )
        vectors.append(vector)
    return vectors


@dataclass
class VectorResult:
    """One vector's outcome: ``problems`` is empty when it passed."""

    name: str
    rules: list[str]
    problems: list[str] = field(default_factory=list)
    #: Wire problems by check (:data:`WIRE_CHECKS`).
    wire: dict[str, list[str]] = field(default_factory=dict)
    #: Whether the driver answered any request (none in any vector: it cannot be run).
    answered: bool = False
    #: Whether a driver process stopped answering (the vector's later processes are skipped).
    broken: bool = False

    @property
    def passed(self) -> bool:
        return not self.problems and not any(self.wire.values())


@dataclass
class Report:
    """Every vector's result, and the verdict per rule."""

    results: list[VectorResult]
    wire: bool = False

    def rows(self) -> list[dict[str, Any]]:
        """One row per rule (and per wire check): vectors run, passed, failed, which failed."""
        names: dict[str, list[VectorResult]] = {}
        for result in self.results:
            for rule in result.rules:
                names.setdefault(rule, []).append(result)
        rows = []
        for rule in sorted(names, key=_rule_key):
            failed = [r.name for r in names[rule] if r.problems]
            rows.append(_row(rule, len(names[rule]), failed))
        if self.wire:
            for check in WIRE_CHECKS:
                failed = [r.name for r in self.results if r.wire.get(check)]
                rows.append(_row(check, len(self.results), failed))
        return rows

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)


def _row(rule: str, vectors: int, failed: list[str]) -> dict[str, Any]:
    return {
        "rule": rule,
        "vectors": vectors,
        "passed": vectors - len(failed),
        "failed": len(failed),
        "failing": failed,
    }


def _rule_key(rule: str) -> tuple[int, str]:
    found = _RULE_ORDER.fullmatch(rule)
    return (int(found.group(1)), "") if found else (1000, rule)


# ------------------------------------------------------------- sessions


class SubprocessSession:
    """A driver command started for one process of a vector."""

    def __init__(self, command: Sequence[str]) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()
        try:
            self._process = subprocess.Popen(  # noqa: S603 - the user's own driver command
                list(command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                encoding="utf-8",
            )
        except OSError as exc:
            self._stderr.close()
            raise DriverUnusableError(f"cannot start {command[0]!r}: {exc.strerror}") from exc
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply (raises :class:`RuntimeError` without one)."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message) + "\n")
            self._process.stdin.flush()
        except OSError as exc:
            raise RuntimeError(f"the driver stopped reading ({exc})") from exc
        try:
            line = self._lines.get(timeout=REPLY_WAIT)
        except queue.Empty:
            raise RuntimeError(f"no reply within {REPLY_WAIT:.0f} s") from None
        if line is None:
            raise RuntimeError(f"the driver ended without a reply{self._said()}")
        try:
            reply = json.loads(line)
        except ValueError:
            raise RuntimeError(f"the reply is not JSON: {line.strip()[:120]!r}") from None
        if not isinstance(reply, dict):
            # A fault of the driver's output, not a type error of this code.
            raise RuntimeError(f"the reply is not a JSON object: {line.strip()[:120]!r}")  # noqa: TRY004
        return reply

    def _said(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return f" (its stderr ends: {text[-1][:200]!r})" if text else ""

    def finish(self) -> str | None:
        """Close the session; a problem if the driver did not end by itself, with status 0."""
        problem = None
        with contextlib.suppress(OSError):
            assert self._process.stdin is not None
            self._process.stdin.close()
        try:
            code = self._process.wait(timeout=REPLY_WAIT)
            if code != 0:
                problem = f"the driver exited with status {code}{self._said()}"
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            problem = f"the driver did not exit within {REPLY_WAIT:.0f} s of its exit step"
        self._reader.join(REPLY_WAIT)
        assert self._process.stdout is not None
        self._process.stdout.close()
        self._stderr.close()
        return problem


# ------------------------------------------------------------- comparing


class _Devices:
    """The renaming of device symbols (``D1`` ...) to the ids a driver reported."""

    def __init__(self) -> None:
        self.to_real: dict[str, str] = {}
        self.to_symbol: dict[str, str] = {}

    def same(self, expected: object, actual: object) -> bool:
        if not (isinstance(expected, str) and _SYMBOL.fullmatch(expected)):
            return expected == actual
        if not isinstance(actual, str):
            return False
        if expected in self.to_real:
            return self.to_real[expected] == actual
        if actual in self.to_symbol:  # a "fresh" device that is one seen before (R7)
            return False
        self.to_real[expected], self.to_symbol[actual] = actual, expected
        return True

    def shown(self, value: object) -> str:
        return f"{value} ({self.to_symbol[value]})" if value in self.to_symbol else repr(value)


def _ordered(sent: object) -> list[Any]:
    """A step's messages, aliases first (the order within a kind is kept)."""
    if not isinstance(sent, list):
        return [sent]
    aliases = [m for m in sent if isinstance(m, dict) and m.get("type") == "alias"]
    return aliases + [m for m in sent if m not in aliases]


def _same_messages(expected: list[Any], actual: list[Any], devices: _Devices) -> bool:
    if len(expected) != len(actual):
        return False
    for want, got in zip(expected, actual, strict=True):
        if not isinstance(got, dict) or set(want) != set(got):
            return False
        if not all(devices.same(want[key], got[key]) for key in sorted(want)):
            return False
    return True


def _compare(
    index: int,
    step: dict[str, Any],
    expected: dict[str, Any],
    reply: dict[str, Any],
    devices: _Devices,
) -> list[str]:
    where = f"step {index + 1} ({step['op']})"
    if reply.get("ok") is not True:
        return [f"{where}: the driver failed: {reply.get('error', 'no error given')}"]
    problems = []
    if "accepted" in expected and expected["accepted"] != reply.get("accepted"):
        problems.append(
            f"{where}: accepted {reply.get('accepted')!r}, expected {expected['accepted']!r}"
        )
    want, got = _ordered(expected["sent"]), _ordered(reply.get("sent"))
    if not _same_messages(want, got, devices):
        problems.append(f"{where}: sent {got}, expected {want}")
    if not devices.same(expected["distinct_id"], reply.get("distinct_id")):
        problems.append(
            f"{where}: distinct id {devices.shown(reply.get('distinct_id'))}, "
            f"expected {expected['distinct_id']}"
        )
    return problems


def _fingerprint(path: Path) -> list[tuple[str, int, int]] | None:
    """What a state dir holds (names, sizes, modification times), ``None`` if it is no dir."""
    if not path.is_dir():
        return None
    found = []
    for folder, _dirs, files in os.walk(path):
        for name in [*files, *_dirs]:
            full = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                status = os.lstat(full)
                size = 0 if os.path.isdir(full) else status.st_size
                found.append((os.path.relpath(full, path), size, status.st_mtime_ns))
    return sorted(found)


# ------------------------------------------------------------- running


def run_vector(
    vector: dict[str, Any],
    start: Callable[[], Session],
    *,
    wire: Any = None,  # noqa: ANN401 - a CaptureServer, imported by the caller
) -> VectorResult:
    """Run ``vector``'s processes in order over a fresh state dir; its result."""
    result = VectorResult(vector["name"], list(vector["rules"]))
    devices = _Devices()
    scratch = Path(tempfile.mkdtemp(prefix="idstitch-conform-"))
    state_dir = scratch / "state"
    if vector.get("setup", {}).get("state_dir") == "file":
        state_dir.write_text("not a directory\n")  # R15: a state dir that cannot be used
    try:
        for number, process in enumerate(vector["processes"], 1):
            problems = _run_process(
                process, start, state_dir=state_dir, devices=devices, result=result, wire=wire
            )
            result.problems += [f"process {number}, {problem}" for problem in problems]
            if result.broken:  # the later processes would start from a state never reached
                break
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.problems += [
        f"device id {real!r} is not a random UUID v4 (R7)"
        for real in devices.to_symbol
        if not _UUID4.fullmatch(real)
    ]
    return result


def _run_process(
    process: dict[str, Any],
    start: Callable[[], Session],
    *,
    state_dir: Path,
    devices: _Devices,
    result: VectorResult,
    wire: Any,  # noqa: ANN401
) -> list[str]:
    problems: list[str] = []
    before = _fingerprint(state_dir)
    arrived = len(wire.messages) if wire is not None else 0
    sessions = [start() for _ in range(process.get("parallel", 1))]
    replies: list[dict[str, Any]] = []
    for index, (step, expected) in enumerate(
        zip(process["steps"], process["replies"], strict=True)
    ):
        message = dict(step)
        if step["op"] == "open":
            message["state_dir"] = str(state_dir)
            if wire is not None:
                message["posthog"] = {"host": wire.url, "api_key": "phc_conformance"}
        try:
            reply = _together(sessions, message)
        except RuntimeError as exc:
            problems.append(f"step {index + 1} ({step['op']}): {exc}")
            result.broken = True
            break
        result.answered = True
        replies.append(reply)
        problems += _compare(index, step, expected, reply, devices)
    for session in sessions:
        ended = session.finish()
        if ended is not None:
            problems.append(ended)
            result.broken = True
    writes = process.get("writes")
    if writes is not None and (_fingerprint(state_dir) != before) != writes:
        problems.append(
            "the state dir was written" if not writes else "the state dir was not written"
        )
    if wire is not None and not problems:
        _check_wire(wire, arrived, replies, devices, result)
    return problems


def _together(sessions: list[Session], message: dict[str, Any]) -> dict[str, Any]:
    """One request to every copy of a process at once (threads), their replies as one: every
    copy's messages, and the distinct id and ``accepted`` they must all agree on."""
    if len(sessions) == 1:
        return sessions[0].request(message)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        replies: list[dict[str, Any]] = list(pool.map(lambda s: s.request(message), sessions))
    failed = [reply for reply in replies if reply.get("ok") is not True]
    if failed:
        return failed[0]
    for key in ("distinct_id", "accepted"):
        if len({json.dumps(reply.get(key)) for reply in replies}) > 1:
            seen = [reply.get(key) for reply in replies]
            return {"ok": False, "error": f"the processes running at once disagree: {key} {seen}"}
    sent = [m for reply in replies for m in reply.get("sent") or []]
    return {**replies[0], "sent": sent}


def _check_wire(
    wire: Any,  # noqa: ANN401 - a CaptureServer
    arrived: int,
    replies: list[dict[str, Any]],
    devices: _Devices,
    result: VectorResult,
) -> None:
    """What reached the capture server during one process, against what its steps reported."""
    sent = [m for reply in replies for m in reply.get("sent", []) if isinstance(m, dict)]
    received = wire.wait_for(arrived + len(sent), timeout=10.0)[arrived:]
    found: dict[str, list[str]] = {check: [] for check in WIRE_CHECKS}
    identify = [m for m in received if m.get("event") == "$identify"]
    if identify:
        found["wire:no-identify"].append(f"{len(identify)} $identify sent (R10)")
    aliases = [m for m in received if m.get("event") == "$create_alias"]
    want_aliases = sorted((m["user_id"], m["device_id"]) for m in sent if m.get("type") == "alias")
    got_aliases = sorted(
        (m.get("distinct_id"), (m.get("properties") or {}).get("alias")) for m in aliases
    )
    if want_aliases != got_aliases:
        found["wire:alias-direction"].append(
            f"$create_alias (distinct_id, alias) on the wire {got_aliases}, "
            f"expected {want_aliases} (distinct_id the user, alias the device)"
        )
    for message in aliases:
        if "$process_person_profile" in (message.get("properties") or {}):
            found["wire:person-profiles"].append("$process_person_profile on a $create_alias")
    others = [m for m in received if m.get("event") not in ("$create_alias", "$identify")]
    want = sorted(
        (m["event"], m["distinct_id"], m["distinct_id"] in devices.to_symbol)
        for m in sent
        if m.get("type") == "capture"
    )
    got = sorted((m.get("event"), m.get("distinct_id"), _device_only(m)) for m in others)
    if [w[:2] for w in want] != [g[:2] for g in got]:
        found["wire:person-profiles"].append(f"events on the wire {got}, expected {want}")
    elif want != got:
        found["wire:person-profiles"].append(
            "$process_person_profile: false must be on exactly the events sent under a "
            f"device id: on the wire {got}, expected {want}"
        )
    for check, problems in found.items():
        result.wire.setdefault(check, []).extend(problems)


def _device_only(message: dict[str, Any]) -> bool:
    return (message.get("properties") or {}).get("$process_person_profile") is False


def subprocess_sessions(command: Sequence[str]) -> Callable[[], Session]:
    """Sessions that each start ``command``."""
    return lambda: SubprocessSession(command)


@contextlib.contextmanager
def _capture_server(wire: bool) -> Iterator[Any]:
    if not wire:
        yield None
        return
    from idstitch.adapters.capture_server import CaptureServer

    with CaptureServer() as server:
        yield server


def run_vectors(
    vectors: list[dict[str, Any]],
    start: Callable[[], Session],
    *,
    wire: bool = False,
    jobs: int | None = None,
) -> Report:
    """Every vector against the driver ``start`` makes sessions of.

    Vectors are independent (each has its own state dir), so ``jobs`` of them run at once
    (default: up to 4, one per CPU); the processes of one vector always run in order. In wire
    mode they run one at a time: each process's messages are those that arrived during it.

    Raises :class:`DriverUnusableError` when the driver cannot be started, or
    answered no request of any vector.
    """
    if jobs is None:
        jobs = min(4, os.cpu_count() or 1)
    with _capture_server(wire) as server:
        if wire or jobs <= 1:
            results = [run_vector(vector, start, wire=server) for vector in vectors]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                results = list(pool.map(lambda vector: run_vector(vector, start), vectors))
    if results and not any(result.answered for result in results):
        first = next((p for r in results for p in r.problems), "no reply")
        raise DriverUnusableError(f"the driver answered no request: {first}")
    return Report(results, wire=wire)
