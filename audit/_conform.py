"""``idstitch conform [--json] [--wire] [--vectors DIR] -- COMMAND...``: the verdict per rule.

Exit codes: 0 every vector passed, 1 some failed, 2 the driver (or the
vectors) cannot be used at all.
"""

from __future__ import annotations

from ._render import Output
from ._source import UnusableInputError

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Sequence

    from idstitch.conformance import Report, VectorResult

__all__ = ["conform_report"]

#: How many problems of one failing vector are printed (``--json`` gives them all).
_SHOWN = 3


def conform_report(driver: Sequence[str], out: Output, *, vectors: str | None, wire: bool) -> int:
    """Run every vector against ``driver``, print the table, return the exit code."""
    from idstitch.conformance import (
        DriverUnusableError,
        load_vectors,
        run_vectors,
        subprocess_sessions,
    )

    try:
        found = load_vectors(vectors)
    except (OSError, ValueError) as exc:
        raise UnusableInputError(f"cannot read the vectors: {exc}") from exc
    if not found:
        raise UnusableInputError(f"no vectors in {vectors}")
    try:
        report = run_vectors(found, subprocess_sessions(driver), wire=wire)
    except DriverUnusableError as exc:
        raise UnusableInputError(f"cannot run the driver: {exc}") from exc
    if out.as_json:
        _print_json(report, out)
    else:
        _print_table(report, out)
    return 0 if report.passed else 1


def _problems(result: VectorResult) -> list[str]:
    return result.problems + [p for found in result.wire.values() for p in found]


def _print_json(report: Report, out: Output) -> None:
    for row in report.rows():
        out.json({"type": "rule", **row})
    for result in report.results:
        out.json(
            {
                "type": "vector",
                "name": result.name,
                "rules": result.rules,
                "passed": result.passed,
                "problems": _problems(result),
            }
        )
    failed = sum(not result.passed for result in report.results)
    total = len(report.results)
    out.json(
        {
            "type": "summary",
            "wire": report.wire,
            "vectors": total,
            "passed": total - failed,
            "failed": failed,
        }
    )


def _print_table(report: Report, out: Output) -> None:
    rows = report.rows()
    width = max(len(row["rule"]) for row in rows)
    out.text(f"{'rule':<{width}}  vectors  passed  failed")
    for row in rows:
        verdict = ("ok", "green") if not row["failed"] else ("FAIL", "red")
        out.text(
            f"{row['rule']:<{width}}  {row['vectors']:>7}  "
            f"{row['passed']:>6}  {row['failed']:>6}  ",
            verdict,
        )
    failed = [result for result in report.results if not result.passed]
    for result in failed:
        problems = _problems(result)
        out.text(("FAIL", "red"), f" {result.name} ({', '.join(result.rules)})")
        for problem in problems[:_SHOWN]:
            out.text(f"  {problem}")
        if len(problems) > _SHOWN:
            out.text(f"  ... and {len(problems) - _SHOWN} more")
    total = len(report.results)
    mode = " (wire checked)" if report.wire else ""
    out.text(f"{total} vectors{mode}: {total - len(failed)} passed, {len(failed)} failed")
