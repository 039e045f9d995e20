"""Helpers for the fleet audit's tests: small PostHog exports, written as Parquet or JSON lines.

Rows have the columns of PostHog's batch export models (persons:
``team_id, distinct_id, person_id, person_distinct_id_version,
person_version, is_deleted, created_at, properties``; events: ``uuid,
event, distinct_id, person_id, properties, timestamp, created_at``).
Parquet is written by DuckDB itself (zstd, as PostHog writes it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PERSONS",
    "PERSON_COLUMNS",
    "REALIASED",
    "alias_event",
    "command_event",
    "device_event",
    "identify_event",
    "person_rows",
    "write_export",
]

PERSON_COLUMNS = (
    "team_id",
    "distinct_id",
    "person_id",
    "person_distinct_id_version",
    "person_version",
    "is_deleted",
    "created_at",
    "properties",
)
_CREATED = "2024-01-01T00:00:00+00:00"


def person_rows(
    person_id: str, ids: Sequence[str], *, version: int = 0, team: int = 1
) -> list[dict[str, Any]]:
    """One persons-export row per distinct id of a person, all at ``version``."""
    return [
        {
            "team_id": team,
            "distinct_id": distinct_id,
            "person_id": person_id,
            "person_distinct_id_version": version,
            "person_version": version,
            "is_deleted": False,
            "created_at": _CREATED,
            "properties": "{}",
        }
        for distinct_id in ids
    ]


def _event(n: int, event: str, distinct_id: str, properties: dict[str, Any]) -> dict[str, Any]:
    time = f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}+00:00"
    return {
        "uuid": f"00000000-0000-4000-8000-{n:012d}",
        "event": event,
        "distinct_id": distinct_id,
        "person_id": None,
        "properties": json.dumps(properties),
        "timestamp": time,
        "created_at": time,
    }


def alias_event(n: int, user: str, device: str, *, dangerously: bool = False) -> dict[str, Any]:
    """``$create_alias`` (or ``$merge_dangerously``) as PostHogSink sends it, at second ``n``."""
    if dangerously:
        return _event(n, "$merge_dangerously", user, {"alias": device})
    return _event(n, "$create_alias", user, {"alias": device, "$device_id": device})


def identify_event(n: int, user: str, anonymous: str) -> dict[str, Any]:
    """``$identify`` of ``anonymous`` as ``user``, at second ``n``."""
    return _event(n, "$identify", user, {"$anon_distinct_id": anonymous})


def command_event(n: int, user: str, device: str) -> dict[str, Any]:
    """A command's event under a user id (it processes persons), at second ``n``."""
    return _event(n, "cli_command_executed", user, {"$device_id": device})


def device_event(n: int, device: str) -> dict[str, Any]:
    """A command's event under a device id: personless, as idstitch sends it."""
    properties = {"$device_id": device, "$process_person_profile": False}
    return _event(n, "cli_command_executed", device, properties)


def write_export(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` to ``path``: Parquet (zstd, by DuckDB) when its name says so, else
    JSON lines. Returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    if ".parquet" not in path.name:
        path.write_text(lines, encoding="utf-8")
        return path
    import duckdb

    staged = path.with_name(path.name + ".jsonl")
    staged.write_text(lines, encoding="utf-8")
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_json('{staged}', format = 'newline_delimited')) "  # noqa: S608
            f"TO '{path}' (FORMAT parquet, COMPRESSION zstd)"
        )
    staged.unlink()
    return path


#: The users and devices of the fleet tests' exports.
A, B, C = "user-a", "user-b", "user-c"
D1, D2, D3 = "dev-1", "dev-2", "dev-3"

#: The old bug: D1 aliased to A, then (after a logout that kept the device) to B.
REALIASED = [
    device_event(1, D1),
    alias_event(2, A, D1),
    command_event(3, A, D1),
    alias_event(4, B, D1),
    command_event(5, B, D1),
    alias_event(6, C, D2),
    command_event(7, C, D2),
]
#: The persons export after REALIASED: p1 holds A, D1 and B; p2 holds C and D2.
PERSONS = person_rows("p1", [A, D1, B]) + person_rows("p2", [C, D2])
