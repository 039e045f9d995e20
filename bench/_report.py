"""One row per figure, the table they make, and the same as JSON."""

from __future__ import annotations

import json
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["FIELDS", "Row", "median", "p95", "render_table", "to_json"]

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


def p95(values: Sequence[float]) -> float:
    """The 95th percentile of ``values``, interpolated between the two samples around it."""
    if len(values) < 2:
        return max(values)
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


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
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


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
