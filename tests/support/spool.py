"""Spooled events for the sender's tests: a closed segment written as a host would."""

from __future__ import annotations

from typing import Any

from idstitch.delivery._spool import SpoolWriter, iso_now, new_uuid

__all__ = ["capture_entry", "spool_events"]


def capture_entry(name: str, **properties: Any) -> dict[str, Any]:
    """A capture line as the sink spools it: a new uuid, the time now, distinct id ``d``."""
    return {
        "type": "capture",
        "uuid": new_uuid(),
        "timestamp": iso_now(),
        "event": name,
        "distinct_id": "d",
        "properties": properties,
    }


def spool_events(folder: str, url: str, count: int, **header: Any) -> list[str]:
    """Spool ``count`` captures named e0... through a closed segment; their uuids."""
    writer = SpoolWriter(folder, {"api_key": "k", "host": url, **header})
    uuids = []
    for index in range(count):
        entry = capture_entry(f"e{index}", index=index)
        uuids.append(entry["uuid"])
        assert writer.append(entry)
    writer.close()
    return uuids
