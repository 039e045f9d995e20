"""Conformance vectors: the identity rules as language-neutral tests any implementation runs.

``conformance/vectors/*.json`` hold scenarios (processes over one state
dir, each a sequence of steps) and the replies the rules expect, written
by :mod:`idstitch.conformance.generate` from a reference model of the rules
(:mod:`._model`) and checked against idstitch. A driver speaks the protocol
of docs/conformance.md; ``idstitch conform -- COMMAND...`` runs every
vector against one and prints a verdict per rule.
"""

from __future__ import annotations

from idstitch.events._lazy import lazy_exports

TYPE_CHECKING = False  # the driver starts once per process of a vector: import nothing now
if TYPE_CHECKING:
    from ._runner import (
        SCHEMA_VERSION,
        WIRE_CHECKS,
        DriverUnusableError,
        Report,
        VectorResult,
        load_vectors,
        run_vectors,
        subprocess_sessions,
    )

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

__getattr__ = lazy_exports(__name__, {"._runner": tuple(__all__)})
