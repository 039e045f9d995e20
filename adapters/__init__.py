"""Adapters between the identity machine and the outside: runtime detection and sinks.

Each submodule is imported on its own (``idstitch.adapters.runtime``,
``idstitch.adapters.sinks``) so that a host pays only for what it uses.
"""

from __future__ import annotations

__all__: list[str] = []
