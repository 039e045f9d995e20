"""Conformance vectors: the identity rules as language-neutral tests any implementation runs.

``conformance/vectors/*.json`` hold scenarios (processes over one state
dir, each a sequence of steps) and the replies the rules expect, written
by :mod:`idstitch.conformance.generate` from a reference model of the rules
(:mod:`._model`) and checked against idstitch. A driver speaks the protocol
of docs/conformance.md; ``idstitch conform -- COMMAND...`` runs every
vector against one and prints a verdict per rule.
"""

from __future__ import annotations

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
