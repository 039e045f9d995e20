"""The fleet check in every dialect, over the exports the DuckDB check reads: ClickHouse's run
for real in chDB (ClickHouse in-process) and BigQuery's run in DuckDB as sqlglot translates it
both flag what DuckDB flags; every rendering parses in its own engine's grammar (sqlglot).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from chdb import session
from idstitch.fleet import DIALECTS, fleet_audit, render_sql
from sqlglot import exp
from sqlglot.errors import ErrorLevel
from support.fleet import (
    D1,
    D2,
    D3,
    PERSONS,
    REALIASED,
    A,
    B,
    C,
    alias_event,
    identify_event,
    person_rows,
    write_export,
)

Row = dict[str, Any]
#: One flagged person as both engines answer it: ``(team_id, person_id, users, devices)``.
Answer = tuple[str, str, tuple[str, ...], tuple[str, ...]]


def _rows(rows: list[Row], **changes: Any) -> list[Row]:
    return [{**row, **changes} for row in rows]


def _deleted_b() -> list[Row]:
    return _rows(person_rows("p1", [B], version=1), is_deleted=True)


#: The ids a regular expression has to tell apart the way Python's re.fullmatch does: a quote,
#: a backslash, a newline ('.' must not match it), a suffix past the match.
ODD_IDS = person_rows("p1", ["o'neil\\7", "user-1", D1]) + person_rows(
    "p2", ["user-2", "user\n3", "user-44", D2]
)
ODD_PATTERN = r"user.\d|o'neil\\\d"

FLAGGED_P1: list[Answer] = [("1", "p1", (A, B), (D1,))]

#: ``name: (persons rows, events rows or None, how users are told, the answer)``: the
#: fixtures of the DuckDB tests (test_fleet_api.py), and the spellings a dialect can get wrong.
SCENARIOS: dict[str, tuple[list[Row], list[Row] | None, dict[str, Any], list[Answer]]] = {
    "realiased device, by events": (PERSONS, REALIASED, {}, FLAGGED_P1),
    "realiased device, by list": (PERSONS, None, {"users": [A, B, C]}, FLAGGED_P1),
    "realiased device, by pattern": (PERSONS, None, {"user_pattern": "user-."}, FLAGGED_P1),
    "pattern naming one user": (PERSONS, None, {"user_pattern": "user-a"}, []),
    "older row after a newer one": (
        [
            *person_rows("p1", [A, D1]),
            *person_rows("p3", [B], version=1),
            *person_rows("p1", [B], version=0),
        ],
        REALIASED,
        {},
        [],
    ),
    "deleted distinct id": (PERSONS + _deleted_b(), None, {"user_pattern": "user-.*"}, []),
    "is_deleted and versions NULL": (
        _rows(PERSONS, is_deleted=None, person_distinct_id_version=None, person_version=None)
        + _rows(person_rows("p3", [C], version=1), is_deleted=None),
        None,
        {"user_pattern": "user-.*"},
        FLAGGED_P1,
    ),
    "identify and merge_dangerously": (
        person_rows("p1", [A, D1, D2, B]),
        [
            identify_event(1, A, D1),
            identify_event(2, B, D2),
            alias_event(3, A, B, dangerously=True),
        ],
        {},
        [("1", "p1", (A, B), (D1, D2))],
    ),
    "illegal id in a merge": (PERSONS, [*REALIASED, alias_event(8, "null", D3)], {}, FLAGGED_P1),
    "quotes, backslashes and newlines in ids": (
        ODD_IDS,
        None,
        {"user_pattern": ODD_PATTERN},
        [("1", "p1", ("o'neil\\7", "user-1"), (D1,))],
    ),
}

#: The relations the rendered query names, typed as PostHog's warehouse tables type them:
#: ``column: (ClickHouse type, DuckDB type)``.
RELATIONS = {
    "persons": {
        "team_id": ("Nullable(Int64)", "BIGINT"),
        "distinct_id": ("String", "VARCHAR"),
        "person_id": ("String", "VARCHAR"),
        "person_distinct_id_version": ("Nullable(Int64)", "BIGINT"),
        "person_version": ("Nullable(Int64)", "BIGINT"),
        "is_deleted": ("Nullable(Bool)", "BOOLEAN"),
    },
    "events": {
        "event": ("String", "VARCHAR"),
        "distinct_id": ("String", "VARCHAR"),
        "properties": ("String", "VARCHAR"),
    },
}
FORMATS = {"parquet": "Parquet", "jsonl": "JSONEachRow"}


@pytest.fixture(scope="module")
def clickhouse() -> Iterator[session.Session]:
    """One in-memory chDB session for the module (its first query costs about a second)."""
    with session.Session() as con:
        yield con


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def exports(tmp_path: Path, scenario: str, ext: str) -> tuple[dict[str, Any], list[Answer]]:
    """Write the scenario's exports under ``tmp_path``; how users are told, and what
    fleet_audit (DuckDB) flags there."""
    persons, events, told, _ = SCENARIOS[scenario]
    write_export(tmp_path / "persons" / f"part-0.{ext}", persons)
    events_glob = None
    if events is not None:
        events_glob = str(write_export(tmp_path / "events" / f"part-0.{ext}", events))
    report = fleet_audit(str(tmp_path / "persons" / f"*.{ext}"), events=events_glob, **told)
    return told, [(p.team_id, p.person_id, p.users, p.devices) for p in report.persons]


def rendered(engine: str, told: dict[str, Any]) -> str:
    """The check for ``engine``, users told as ``told`` says."""
    return render_sql(engine, user_pattern=told.get("user_pattern"), users="users" in told)


def flagged(rows: list[Any]) -> list[Answer]:
    """The check's rows (``team_id, person_id, distinct_id, is_user, version``) per person."""
    persons: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for team, person, distinct, is_user, _version in rows:
        held = persons.setdefault((str(team), person), ([], []))
        held[0 if is_user else 1].append(distinct)
    return [(*key, tuple(u), tuple(d)) for key, (u, d) in persons.items()]


def clickhouse_answer(
    con: session.Session, folder: Path, ext: str, sql: str, users: list[str] | None
) -> list[Answer]:
    """The flagged persons of ``sql`` run in chDB over the exports in ``folder``."""
    for name, columns in RELATIONS.items():
        structure = ", ".join(f"{column} {types[0]}" for column, types in columns.items())
        source = f"file({_literal(str(folder / name / f'*.{ext}'))}, {FORMATS[ext]}"
        con.query(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}, '{structure}')")  # noqa: S608
    con.query("CREATE OR REPLACE TABLE users (distinct_id String) ENGINE = Memory")
    if users:
        values = ", ".join(f"({_literal(user)})" for user in users)
        con.query(f"INSERT INTO users VALUES {values}")  # noqa: S608
    return flagged(json.loads(con.query(sql, "JSONCompact").data())["data"])


def duckdb_answer(folder: Path, sql: str, users: list[str] | None) -> list[Answer]:
    """The flagged persons of ``sql`` (DuckDB's) run in DuckDB over the Parquet exports in
    ``folder`` (a view binds its files at once: only the exports written)."""
    with duckdb.connect() as con:
        for name, columns in RELATIONS.items():
            if not (folder / name).is_dir():
                continue
            typed = ", ".join(f"CAST({c} AS {types[1]}) AS {c}" for c, types in columns.items())
            glob = str(folder / name / "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW {name} AS SELECT {typed} FROM read_parquet('{glob}')")  # noqa: S608
        con.execute("CREATE TABLE users AS SELECT unnest(?::VARCHAR[]) AS distinct_id", [users])
        return flagged(con.execute(sql).fetchall())


@pytest.mark.parametrize("ext", list(FORMATS))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_clickhouse_flags_what_duckdb_flags(
    clickhouse: session.Session, tmp_path: Path, scenario: str, ext: str
) -> None:
    """render_sql('clickhouse') in chDB flags the persons, users and devices fleet_audit
    (DuckDB) flags, the expected ones, over the same Parquet or JSON lines exports."""
    told, duckdb_flags = exports(tmp_path, scenario, ext)
    sql = rendered("clickhouse", told)
    answer = clickhouse_answer(clickhouse, tmp_path, ext, sql, told.get("users"))
    expected = SCENARIOS[scenario][3]
    assert (expected, expected) == (duckdb_flags, answer)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_bigquery_rendering_read_back_into_duckdb_flags_the_same(
    tmp_path: Path, scenario: str
) -> None:
    """The BigQuery rendering, read by sqlglot in BigQuery's grammar (it refuses what it cannot
    translate) and written for DuckDB, flags what fleet_audit flags."""
    # Not Snowflake's: sqlglot writes its VARIANT::STRING as a JSON cast to text, which keeps
    # the quotes around a string that Snowflake drops, so every id would differ.
    told, duckdb_flags = exports(tmp_path, scenario, "parquet")
    sql = sqlglot.transpile(
        rendered("bigquery", told),
        read="bigquery",
        write="duckdb",
        unsupported_level=ErrorLevel.RAISE,
    )[0]
    answer = duckdb_answer(tmp_path, sql, told.get("users") or [])
    assert (duckdb_flags, duckdb_flags) == (SCENARIOS[scenario][3], answer)


@pytest.mark.parametrize("engine", list(DIALECTS))
def test_every_rendering_parses_in_its_dialect(engine: str) -> None:
    """Each engine's SQL parses in that engine's grammar (sqlglot) and reads the relations the
    docs name, gives the documented columns, and its pattern literal reads back as written."""
    pattern = ODD_PATTERN
    wrapped = DIALECTS[engine].anchor.format(pattern=pattern)
    shapes = []
    for told in ({}, {"users": True}, {"user_pattern": pattern}):
        tree = sqlglot.parse_one(
            render_sql(engine, **told), read=engine, error_level=ErrorLevel.RAISE
        )
        assert isinstance(tree, exp.Query)
        ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
        read = sorted({table.name for table in tree.find_all(exp.Table)} - ctes)
        literals = {lit.this for lit in tree.find_all(exp.Literal) if lit.is_string}
        shapes.append((read, tree.named_selects, wrapped in literals))
    columns = ["team_id", "person_id", "distinct_id", "is_user", "version"]
    assert [
        (["events", "persons"], columns, False),
        (["persons", "users"], columns, False),
        (["persons"], columns, True),
    ] == shapes
