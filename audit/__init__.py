"""The ``idstitch`` audit tool: replay, verify and explain identity logs."""

from __future__ import annotations

__all__: list[str] = []
