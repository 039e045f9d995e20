"""B1 in instructions: what each replay case executes per record, counted by callgrind.

Wall-clock ratios move with whatever else the machine runs (on a shared
two-core machine the same code measured 0.5x to 0.75x the floor from one
run to the next). valgrind's callgrind counts the instructions a process
executes instead, which is the same on every run of the same build. Each
case runs in a child process under callgrind twice, once with one pass over
the log and once with two; the difference is one warm pass, free of the
interpreter's start and the imports. Instructions are not time (hashing
retires more instructions per cycle than the interpreter's dispatch does),
so these figures complement the timed ones rather than replace them.

Run as a child: ``python -m bench._instructions CASE LOG PASSES``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import _replay

__all__ = ["CASES", "available", "per_record"]

#: The B1 cases counted, by their names in :mod:`bench._replay`.
CASES = ("floor", "bare_loads", "checked_replay", "strict_replay", "transitions_replay")

_COLLECTED = re.compile(r"Collected : (\d+)")


def available() -> bool:
    """Whether valgrind is on the PATH."""
    return shutil.which("valgrind") is not None


def _count(case: str, log: Path, passes: int) -> int:
    """Instructions the child executes running ``case`` over ``log`` ``passes`` times."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench._instructions",
        case,
        str(log),
        str(passes),
    ]
    root = Path(__file__).resolve().parent.parent
    # One hash seed for every child: the same dict layouts, so the same counts.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # The command is ours: valgrind, this interpreter and this module.
    done = subprocess.run(  # noqa: S603
        command, cwd=root, env=env, capture_output=True, text=True, check=False
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {case} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_record(log: Path, records: int, cases: tuple[str, ...] = CASES) -> dict[str, float]:
    """Instructions per record of one warm pass of each case over ``log``."""
    jobs = [(case, passes) for case in cases for passes in (1, 2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = pool.map(lambda job: _count(job[0], log, job[1]), jobs)
        counts = dict(zip(jobs, found, strict=True))
    return {case: (counts[case, 2] - counts[case, 1]) / records for case in cases}


def _child(case: str, log: str, passes: str) -> None:
    run = getattr(_replay, case)
    for _ in range(int(passes)):
        run(Path(log))


if __name__ == "__main__":
    _child(*sys.argv[1:4])
