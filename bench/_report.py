"""One row per figure, the table they make, and the same as JSON."""

from __future__ import annotations

import json
import math
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "FIELDS",
    "Row",
    "median",
    "percentile",
    "render_phases",
    "render_table",
    "render_tax",
    "to_json",
]

#: How a row compares ours with its baseline.
Compare = Literal["ratio", "inverse", "difference", "none"]


@dataclass(frozen=True)
class Row:
    """One line of the table: our figure, the baseline's, how they compare, and the bar.

    ``compare`` says how ``ratio`` was formed: ``"ratio"`` is ours / baseline
    (a throughput: higher is better), ``"inverse"`` is ours / baseline for a
    time (lower is better), ``"difference"`` is ours - baseline in the
    unit, ``"none"`` means the row has no baseline. ``met`` is ``None`` for
    rows given for context only.
    """

    bar: str
    measure: str
    ours: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    compare: Compare = "none"
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    runs: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ours_text(self) -> str:
        """Our figure with its unit."""
        return _figure(self.ours, self.unit)

    @property
    def baseline_text(self) -> str:
        """The baseline's figure with its unit, or a dash."""
        return "—" if self.baseline_value is None else _figure(self.baseline_value, self.unit)

    @property
    def ratio_text(self) -> str:
        """How ours compares: ``0.81x``, ``+6.2 ms`` or a dash."""
        if self.ratio is None:
            return "—"
        if self.compare == "difference":
            return f"{self.ratio:+.1f} {self.unit}"
        return f"{self.ratio:.2f}x"

    @property
    def met_text(self) -> str:
        """``yes``, ``NO`` or ``context``."""
        return "context" if self.met is None else ("yes" if self.met else "NO")


#: The fields of a row, in the table's and the JSON's order.
FIELDS = (
    "bar",
    "measure",
    "ours",
    "unit",
    "baseline",
    "baseline_value",
    "compare",
    "ratio",
    "target",
    "met",
    "runs",
)


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile: the smallest value at least ``q`` % of them reach.

    With 21 values, the 95th is the 20th smallest; with fewer than 20, the largest.
    """
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def _figure(value: float, unit: str) -> str:
    if unit == "rec/s":
        return f"{value / 1000:,.0f} k rec/s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "s":
        return f"{value:.2f} s"
    if value == int(value):
        return f"{int(value):,} {unit}"
    return f"{value:,.2f} {unit}"


def render_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal too)."""
    header = (
        "bar",
        "measure",
        "ours",
        "baseline",
        "baseline figure",
        "ours vs baseline",
        "target",
        "met",
    )
    cells = [
        (
            r.bar,
            r.measure,
            r.ours_text,
            r.baseline or "—",
            r.baseline_text,
            r.ratio_text,
            r.target or "—",
            r.met_text,
        )
        for r in rows
    ]
    return _markdown(header, cells)


def _markdown(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def render_tax(cases: Sequence[dict[str, Any]]) -> str:
    """B6 in detail: each runtime and condition, telemetry on and off, median and p95 (ms).

    ``cases`` are the dicts of ``bench._delivery.tax_case``; the tax is on minus
    off, of the medians and of the p95s.
    """
    header = (
        "runtime",
        "PostHog",
        "on: median",
        "on: p95",
        "DO_NOT_TRACK: median",
        "DO_NOT_TRACK: p95",
        "tax: median",
        "tax: p95",
        "runs",
        "events of the on half",
    )
    cells = [
        (
            case["runtime"],
            case["label"],
            f"{case['on_median']:.1f}",
            f"{case['on_p95']:.1f}",
            f"{case['off_median']:.1f}",
            f"{case['off_p95']:.1f}",
            f"{case['tax_median']:+.1f}",
            f"{case['tax_p95']:+.1f}",
            str(case["runs"]),
            f"{case['expected']}: {case['delivered']} delivered, {case['waiting']} waiting"
            + (f", {case['dropped']} dropped" if case["dropped"] else "")
            + (f", {case['lost']} LOST" if case["lost"] else ""),
        )
        for case in cases
    ]
    return _markdown(header, cells)


def render_phases(found: Sequence[dict[str, Any]]) -> str:
    """B6 phase by phase: the medians of ``bench._delivery.phases`` (ms)."""
    from bench._delivery import PHASES

    header = ("PostHog", "run", *PHASES)
    cells = [
        (case["label"], case["half"], *(f"{case[phase]:.1f}" for phase in PHASES)) for case in found
    ]
    return _markdown(header, cells)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import os

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def to_json(rows: Sequence[Row], *, settings: dict[str, Any], extra: dict[str, Any]) -> str:
    """The rows (every field, and the raw samples) as a JSON document."""
    return json.dumps(
        {
            "machine": machine(),
            "settings": settings,
            "rows": [
                {**{name: getattr(r, name) for name in FIELDS}, "samples": asdict(r)["samples"]}
                for r in rows
            ],
            **extra,
        },
        indent=2,
        ensure_ascii=False,
    )
