"""The sink the service falls back on when the host gives none, or the user opted out.

It lives here, below the adapters, because the service needs it without
importing anything above its own floor; :mod:`idstitch.adapters.sinks`
re-exports it beside the real sinks.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["NullSink"]


class NullSink:
    """Sends nothing. Reports everything as queued (``True``), or, with
    ``queued=False``, as not queued: the opted-out sink of rule R14.

    ``sends=False`` also says so to the service, which then never asks it for
    an alias (the default sink of ``IdentityStitch.open(sink=None)``: an alias
    it "queued" would mark the device aliased while PostHog merged nothing).
    """

    def __init__(self, *, queued: bool = True, sends: bool = True) -> None:
        self.queued = queued
        self.sends = sends

    def alias(self, *, user_id: str, device_id: str) -> bool:
        """Drop an alias."""
        return self.queued

    def capture(
        self,
        *,
        distinct_id: str,
        event: str,
        properties: Mapping[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        """Drop an event."""
        return self.queued

    def flush(self, timeout: float) -> None:
        """Nothing to deliver."""
