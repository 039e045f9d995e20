"""Timing: warm up once, then run every case in turn, round after round.

Interleaving the cases (ours, then the baseline, then ours again...)
spreads any slow spell of the machine over all of them, so the ratios of
one run hold even when the absolute figures drift.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Case", "interleaved"]


class Case:
    """A measured function: ``run(arg)`` returns how many items it processed.

    ``warmup_arg`` is what it runs on once before timing (a smaller input
    for the slow cases), ``runs`` how many timed rounds it takes part in;
    ``warm=False`` skips the warm-up (a case whose setup already ran its code).
    """

    def __init__(
        self,
        run: Callable[[Any], int],
        arg: object,
        *,
        runs: int,
        warmup_arg: object | None = None,
        warm: bool = True,
    ) -> None:
        self.run = run
        self.arg = arg
        self.runs = runs
        self.warmup_arg = arg if warmup_arg is None else warmup_arg
        self.warm = warm


def interleaved(cases: Mapping[str, Case]) -> dict[str, tuple[int, list[float]]]:
    """Warm every case up, then time them in rounds; ``{name: (items, [seconds...])}``.

    A case whose item count changes between rounds is a bug in the case:
    ``RuntimeError``.
    """
    for case in cases.values():
        if case.warm:
            case.run(case.warmup_arg)
    results: dict[str, tuple[int, list[float]]] = {}
    rounds = max((case.runs for case in cases.values()), default=0)
    for round_ in range(rounds):
        for name, case in cases.items():
            if round_ >= case.runs:
                continue
            started = time.perf_counter()
            items = case.run(case.arg)
            elapsed = time.perf_counter() - started
            count, times = results.setdefault(name, (items, []))
            if count != items:
                raise RuntimeError(f"{name} processed {items} items, then {count}")
            times.append(elapsed)
    return results
