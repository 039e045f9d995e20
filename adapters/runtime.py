"""Runtime classification (rule R2): the public path of :mod:`idstitch.service._runtime`.

The detection lives with the service that needs it (the service sits below
the adapters and imports nothing above it); this module keeps the
contract's import path, ``from idstitch.adapters.runtime import Runtime``.
"""

from __future__ import annotations

from idstitch.service._runtime import (
    CI_VARIABLES,
    Runtime,
    detect_runtime,
    is_truthy,
    runtime_override,
)

__all__ = ["CI_VARIABLES", "Runtime", "detect_runtime", "is_truthy", "runtime_override"]
