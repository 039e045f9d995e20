"""Spooled events for the sender's tests: a closed segment written as a host would."""

from __future__ import annotations

from typing import Any

from idstitch.delivery._spool import SpoolWriter, iso_now, new_uuid

__all__ = ["spool_events"]


def spool_events(folder: str, url: str, count: int, **header: Any) -> list[str]:
    """Spool ``count`` captures named e0... through a closed segment; their uuids."""
    writer = SpoolWriter(folder, {"api_key": "k", "host": url, **header})
    uuids = []
    for index in range(count):
        uuid = new_uuid()
        uuids.append(uuid)
        entry = {
            "type": "capture",
            "uuid": uuid,
            "timestamp": iso_now(),
            "event": f"e{index}",
            "distinct_id": "d",
            "properties": {"index": index},
        }
        assert writer.append(entry)
    writer.close()
    return uuids
