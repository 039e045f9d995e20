"""Where identity events go: the sink protocol and its test doubles.

A sink has three methods; ``False`` from ``alias`` or ``capture`` means
"not queued" (rule R9 for an alias). :class:`NullSink` sends nothing and
:class:`RecordingSink` keeps what it was given, for tests and dry runs.
"""

from __future__ import annotations

import _thread

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ._protocol import Sink


__all__ = ["NullSink", "RecordedAlias", "RecordedCapture", "RecordingSink", "Sink"]


class NullSink:
    """Accepts everything (returns ``True``) and sends nothing."""

    def alias(self, *, user_id: str, device_id: str) -> bool:
        """Accept and drop an alias."""
        return True

    def capture(
        self,
        *,
        distinct_id: str,
        event: str,
        properties: Mapping[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        """Accept and drop an event."""
        return True

    def flush(self, timeout: float) -> None:
        """Nothing to deliver."""


class RecordedAlias:
    """One alias a :class:`RecordingSink` was given."""

    __slots__ = ("device_id", "user_id")

    def __init__(self, user_id: str, device_id: str) -> None:
        self.user_id = user_id
        self.device_id = device_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordedAlias) and (self.user_id, self.device_id) == (
            other.user_id,
            other.device_id,
        )

    def __hash__(self) -> int:
        return hash((self.user_id, self.device_id))

    def __repr__(self) -> str:
        return f"RecordedAlias(user_id={self.user_id!r}, device_id={self.device_id!r})"


class RecordedCapture:
    """One event a :class:`RecordingSink` was given."""

    __slots__ = ("distinct_id", "event", "groups", "properties")

    def __init__(
        self,
        distinct_id: str,
        event: str,
        properties: dict[str, Any],
        groups: dict[str, str],
    ) -> None:
        self.distinct_id = distinct_id
        self.event = event
        self.properties = properties
        self.groups = groups

    def _key(self) -> tuple[str, str, dict[str, Any], dict[str, str]]:
        return (self.distinct_id, self.event, self.properties, self.groups)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordedCapture) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # holds dicts: compare, never hash

    def __repr__(self) -> str:
        return (
            f"RecordedCapture(distinct_id={self.distinct_id!r}, event={self.event!r}, "
            f"properties={self.properties!r}, groups={self.groups!r})"
        )


class RecordingSink:
    """Keeps every alias and capture in :attr:`aliases` and :attr:`captures`.

    ``fail_aliases`` makes the next that many ``alias`` calls return
    ``False`` (an enqueue failure, rule R9); ``raise_on_alias`` makes them
    raise instead.
    """

    def __init__(self, *, fail_aliases: int = 0, raise_on_alias: bool = False) -> None:
        self.aliases: list[RecordedAlias] = []
        self.captures: list[RecordedCapture] = []
        self.flushes: list[float] = []
        self.fail_aliases = fail_aliases
        self.raise_on_alias = raise_on_alias
        self._lock = _thread.allocate_lock()

    def alias(self, *, user_id: str, device_id: str) -> bool:
        """Record an alias, or fail as configured."""
        with self._lock:
            if self.raise_on_alias:
                raise RuntimeError("RecordingSink: alias failed (raise_on_alias)")
            if self.fail_aliases > 0:
                self.fail_aliases -= 1
                return False
            self.aliases.append(RecordedAlias(user_id, device_id))
            return True

    def capture(
        self,
        *,
        distinct_id: str,
        event: str,
        properties: Mapping[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        """Record an event."""
        with self._lock:
            self.captures.append(
                RecordedCapture(distinct_id, event, dict(properties), dict(groups))
            )
            return True

    def flush(self, timeout: float) -> None:
        """Record that a flush was asked for."""
        with self._lock:
            self.flushes.append(timeout)


def __getattr__(name: str) -> object:
    if name == "Sink":  # the Protocol lives apart so that typing loads only when asked for
        from ._protocol import Sink

        return Sink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
