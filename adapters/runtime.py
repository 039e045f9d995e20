"""Runtime classification (rule R2): the public path of :mod:`idstitch.service._runtime`.

The detection lives with the service that needs it (the service sits below
the adapters and imports nothing above it); this module keeps the
contract's import path, ``from idstitch.adapters.runtime import Runtime``.
:func:`runtime_verdict` says why as well: a stable reason token and the
provider it names (a CI vendor, a development environment, a launcher).
"""

from __future__ import annotations

from idstitch.service._runtime import (
    CI_PROVIDERS,
    CI_VARIABLES,
    DEV_ENVIRONMENTS,
    RUNTIME_REASONS,
    Runtime,
    RuntimeVerdict,
    detect_runtime,
    is_truthy,
    runtime_override,
    runtime_verdict,
)

__all__ = [
    "CI_PROVIDERS",
    "CI_VARIABLES",
    "DEV_ENVIRONMENTS",
    "RUNTIME_REASONS",
    "Runtime",
    "RuntimeVerdict",
    "detect_runtime",
    "is_truthy",
    "runtime_override",
    "runtime_verdict",
]
