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

__all__ = ["conform_report"]

#: How many problems of one failing vector are printed (``--json`` gives them all).
_SHOWN = 3


def conform_report(
    driver: Sequence[str], out: Output, *, vectors: str | None, wire: bool
) -> int:
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
    failed = [result for result in report.results if not result.passed]
    if out.as_json:
        for row in report.rows():
            out.json({"type": "rule", **row})
        for result in report.results:
            out.json(
                {
                    "type": "vector",
                    "name": result.name,
                    "rules": result.rules,
                    "passed": result.passed,
                    "problems": result.problems + [p for ps in result.wire.values() for p in ps],
                }
            )
    else:
        width = max(len(row["rule"]) for row in report.rows())
        out.text(f"{'rule':<{width}}  vectors  passed  failed")
        for row in report.rows():
            verdict = ("ok", "green") if not row["failed"] else ("FAIL", "red")
            out.text(
                f"{row['rule']:<{width}}  {row['vectors']:>7}  {row['passed']:>6}  "
                f"{row['failed']:>6}  ",
                verdict,
            )
        for result in failed:
            problems = result.problems + [p for ps in result.wire.values() for p in ps]
            out.text(("FAIL", "red"), f" {result.name} ({', '.join(result.rules)})")
            for problem in problems[:_SHOWN]:
                out.text(f"  {problem}")
            if len(problems) > _SHOWN:
                out.text(f"  ... and {len(problems) - _SHOWN} more")
    total = len(report.results)
    summary = {"vectors": total, "passed": total - len(failed), "failed": len(failed)}
    if out.as_json:
        out.json({"type": "summary", "wire": wire, **summary})
    else:
        mode = " (wire checked)" if wire else ""
        out.text(f"{total} vectors{mode}: {summary['passed']} passed, {summary['failed']} failed")
    return 1 if failed else 0
