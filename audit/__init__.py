"""The ``idstitch`` audit tool: replay, verify and explain identity logs, from Python too.

Each command of the ``idstitch`` tool is a function here returning a frozen
result object (see docs/audit.md)::

    from idstitch.audit import verify_log

    report = verify_log("identity.jsonl")
    for violation in report.violations:
        print(violation.id, violation.seq, violation.message)

Importing this package loads nothing else: each name is imported on first
access (PEP 562), because the console script imports ``idstitch.audit.cli``
through it on every run.
"""

from __future__ import annotations

from idstitch.events._lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from ._api import (
        Person,
        PersonReport,
        TimelineReport,
        VerifyReport,
        diagnosis,
        diagram,
        person_graph,
        state_report,
        timeline,
        verify_log,
    )
    from ._persons import Refusal
    from ._show import StateReport
    from ._source import UnusableInputError
    from ._timeline import Step
    from ._verify import INVARIANTS, Violation

__all__ = [
    "INVARIANTS",
    "Person",
    "PersonReport",
    "Refusal",
    "StateReport",
    "Step",
    "TimelineReport",
    "UnusableInputError",
    "VerifyReport",
    "Violation",
    "diagnosis",
    "diagram",
    "person_graph",
    "state_report",
    "timeline",
    "verify_log",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "._api": (
            "Person",
            "PersonReport",
            "TimelineReport",
            "VerifyReport",
            "diagnosis",
            "diagram",
            "person_graph",
            "state_report",
            "timeline",
            "verify_log",
        ),
        "._persons": ("Refusal",),
        "._show": ("StateReport",),
        "._source": ("UnusableInputError",),
        "._timeline": ("Step",),
        "._verify": ("INVARIANTS", "Violation"),
    },
)
