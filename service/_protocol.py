"""The sink protocol (kept apart so that ``typing`` is imported only when it is used)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["Sink"]


@runtime_checkable
class Sink(Protocol):
    """What the identity service sends through. ``False`` means "not queued".

    A sink may also have a ``sends`` attribute: ``False`` says that it refuses
    every alias (it has no key, or is disabled), so the service stamps users and
    never tries one. Without it, a sink is taken to send.
    """

    def alias(self, *, user_id: str, device_id: str) -> bool:
        """Queue one ``$create_alias`` merging ``device_id``'s history into ``user_id``."""
        ...

    def capture(
        self,
        *,
        distinct_id: str,
        event: str,
        properties: Mapping[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        """Queue one event under ``distinct_id``."""
        ...

    def flush(self, timeout: float) -> None:
        """Deliver what is queued, waiting at most ``timeout`` seconds."""
        ...
