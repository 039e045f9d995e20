"""Fresh interpreters: timing the start-up of a host CLI (B2, B4), and 16 of them racing (B5).

A host CLI is installed with its bytecode compiled, so the package is
compiled first (:func:`compile_package`) and the children run without
``PYTHONDONTWRITEBYTECODE`` (which the development machine sets), as an
installed console script would. The runtime is pinned with
``IDSTITCH_RUNTIME=persistent`` so that a CI variable does not turn a
measured path into another; the start paths of B2 (:mod:`bench._starts`)
give ``IdentityStitch.open`` their own ``env`` besides.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HEAVY_MODULES",
    "child_env",
    "compile_package",
    "contention",
    "timed_starts",
]

#: Modules no start path may import (spec B2).
HEAVY_MODULES = ("posthog", "pydantic", "transitions", "orjson")


def child_env() -> dict[str, str]:
    """The environment of a child: this one, as an installed CLI would see it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONDONTWRITEBYTECODE", "DO_NOT_TRACK", "PYTHONPROFILEIMPORTTIME")
    }
    env["IDSTITCH_RUNTIME"] = "persistent"
    return env


def compile_package() -> list[str]:
    """Write the bytecode of every ``idstitch`` module; the folders compiled."""
    import compileall

    import idstitch

    folders = [str(p) for p in idstitch.__path__]
    for folder in folders:
        compileall.compile_dir(folder, quiet=1)
    return folders


#: A command to time: its argv, or a function that prepares a run and returns its argv.
Command = Sequence[str] | Callable[[], Sequence[str]]


def timed_starts(
    commands: Mapping[str, Command], runs: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Wall time (seconds) of each command, run ``runs`` times, interleaved.

    The order alternates from round to round, so neither command always
    runs right after the other. A command given as a function is called
    before each round, outside the time (to prepare a fresh state dir), and
    the disk is synced then: a run's own fsyncs never flush what the
    preparation wrote, as a CLI's never flush its state dir's creation.
    """
    env = child_env()
    names = list(commands)

    def round_of(order: Sequence[str]) -> list[tuple[str, Sequence[str]]]:
        prepared = [(name, _argv(commands[name])) for name in order]
        if any(callable(commands[name]) for name in order):
            os.sync()
        return prepared

    for _ in range(warmup):
        for _name, args in round_of(names):
            subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        for name, args in round_of(names if round_ % 2 == 0 else names[::-1]):
            started = time.perf_counter()
            subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
            times[name].append(time.perf_counter() - started)
    return times


def _argv(command: Command) -> Sequence[str]:
    return command() if callable(command) else command


def _first_response(state_dir: str, user: str, barrier: Any, results: Any) -> None:  # noqa: ANN401
    """One racer: open the state dir, wait for all, observe the first response, report."""
    from idstitch.adapters.sinks import RecordingSink
    from idstitch.machine import IdentityStitch

    sink = RecordingSink()
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=sink, env={})
    barrier.wait(60)
    released = time.monotonic()
    stitch.observe_authenticated_response(user)
    done = time.monotonic()
    results.put((len(sink.aliases), released, done, stitch.distinct_id))


def contention(state_dir: Path, processes: int, user: str = "user-a") -> dict[str, Any]:
    """``processes`` processes see their first response at once on a fresh state dir.

    Returns the aliases sent, the alias records in the log, the wall time
    from the moment they were released to the last one done, and from
    the first start to the last exit.
    """
    import multiprocessing

    from idstitch.adapters.sinks import NullSink
    from idstitch.machine import IdentityStitch
    from idstitch.store import LOG_NAME, FileLog

    IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=NullSink(), env={})
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    started = time.monotonic()
    workers = [
        context.Process(target=_first_response, args=(str(state_dir), user, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    ended = time.monotonic()
    if any(worker.exitcode != 0 for worker in workers):
        raise RuntimeError(f"a racer failed: exit codes {[w.exitcode for w in workers]}")
    records = list(FileLog(state_dir / LOG_NAME).records(strict=True))
    return {
        "processes": processes,
        "aliases_sent": sum(report[0] for report in reports),
        "alias_records": sum(1 for record in records if record.get("alias") is True),
        "distinct_ids": sorted({report[3] for report in reports}),
        "seconds_from_release": max(r[2] for r in reports) - min(r[1] for r in reports),
        "seconds_from_start": ended - started,
    }
