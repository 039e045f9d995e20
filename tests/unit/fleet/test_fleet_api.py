"""`idstitch.fleet` from Python: the check, its explanation and plan, over small real exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from idstitch.audit import UnusableInputError
from idstitch.fleet import DIALECTS, FlaggedPerson, Join, SharedDevice, fleet_audit, render_sql
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


def export(
    tmp_path: Path, persons: list[Row], events: list[Row] | None = None, ext: str = "parquet"
) -> tuple[str, str | None]:
    """Write the exports; their globs."""
    write_export(tmp_path / "persons" / f"part-0.{ext}", persons)
    if events is None:
        return str(tmp_path / "persons" / f"*.{ext}"), None
    write_export(tmp_path / "events" / f"part-0.{ext}", events)
    return str(tmp_path / "persons" / f"*.{ext}"), str(tmp_path / "events" / f"*.{ext}")


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_a_realiased_device_flags_its_person_explained_and_planned(
    tmp_path: Path, ext: str
) -> None:
    """The re-aliased device's person is flagged, B's join named (attached branch), B split off."""
    persons, events = export(tmp_path, PERSONS, REALIASED, ext)
    report = fleet_audit(persons, events=events)
    reason = f"$create_alias({A} <- {D1}) at 2024-01-01 00:00:02+00 created the person for it"
    join = Join(B, "2024-01-01 00:00:04+00", "$create_alias", B, D1, "attached")
    expected = FlaggedPerson("1", "p1", (A, B), (D1,), A, True, reason, (join,), (B,))
    aliases = (
        ("2024-01-01 00:00:02+00", "$create_alias", A),
        ("2024-01-01 00:00:04+00", "$create_alias", B),
    )
    assert ((expected,), (SharedDevice(D1, (A, B), aliases),), (), False) == (
        report.persons,
        report.devices,
        report.illegal,
        report.ok,
    )
    assert {
        "team_id": "1",
        "person_id": "p1",
        "keep": A,
        "keep_known": True,
        "distinct_ids_to_split": [B],
        "request": {
            "method": "POST",
            "path": "/api/projects/1/persons/p1/split/",
            "json": {"distinct_ids_to_split": [B]},
        },
    } == report.persons[0].plan()


def test_an_older_row_after_a_newer_one_loses_the_dedup(tmp_path: Path) -> None:
    """Incremental exports: the newest version of each distinct id wins, whatever the order."""
    # B was on p1 (version 0), then split off to p3 (version 1); an older batch came last.
    rows = [*person_rows("p1", [A, D1]), *person_rows("p3", [B], version=1)]
    rows += person_rows("p1", [B], version=0)
    persons, events = export(tmp_path, rows, REALIASED)
    assert ((), True) == (fleet_audit(persons, events=events).persons, True)


def test_a_deleted_distinct_id_holds_no_person(tmp_path: Path) -> None:
    """A row marked is_deleted (its newest version) takes that id off the person."""
    deleted = person_rows("p1", [B], version=1)
    deleted[0]["is_deleted"] = True
    persons, _ = export(tmp_path, PERSONS + deleted)
    assert () == fleet_audit(persons, user_pattern="user-.*").persons


def test_users_told_by_a_list_or_a_pattern_without_events(tmp_path: Path) -> None:
    """Without events, --users and --user-pattern tell users; the keep is then a guess."""
    persons, _ = export(tmp_path, PERSONS)
    by_list = fleet_audit(persons, users=[A, B, C])
    by_pattern = fleet_audit(persons, user_pattern="user-.")
    assert by_list.persons == by_pattern.persons
    (person,) = by_list.persons
    assert (A, False, (B,), ()) == (person.keep, person.keep_known, person.split, person.joins)
    assert () == fleet_audit(persons, user_pattern="user-a").persons


def test_nothing_to_tell_users_by_or_both_ways_is_unusable(tmp_path: Path) -> None:
    """No events, list or pattern: an error naming the three; list and pattern: one only."""
    persons, _ = export(tmp_path, PERSONS)
    with pytest.raises(UnusableInputError, match="give --events, --users or --user-pattern"):
        fleet_audit(persons)
    with pytest.raises(UnusableInputError, match="once"):
        fleet_audit(persons, users=[A], user_pattern=".*")
    with pytest.raises(UnusableInputError, match="not a regular expression"):
        fleet_audit(persons, user_pattern="(")


def test_an_unreadable_export_is_unusable(tmp_path: Path) -> None:
    """A file that is not Parquet, or a missing column, is one line naming the export."""
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UnusableInputError, match=r"^cannot read the persons export '.*bad"):
        fleet_audit(tmp_path / "bad.parquet", user_pattern=".*")
    write_export(tmp_path / "thin.parquet", [{"distinct_id": A, "person_id": "p1"}])
    with pytest.raises(UnusableInputError, match="team_id"):
        fleet_audit(tmp_path / "thin.parquet", user_pattern=".*")


def test_identify_and_merge_dangerously_follow_posthogs_rules(tmp_path: Path) -> None:
    """$identify merges like an alias; $merge_dangerously merges an identified person in."""
    events = [
        identify_event(1, A, D1),
        identify_event(2, B, D2),
        alias_event(3, A, B, dangerously=True),
    ]
    persons, events_glob = export(tmp_path, person_rows("p1", [A, D1, D2, B]), events)
    (person,) = fleet_audit(persons, events=events_glob).persons
    join = Join(B, "2024-01-01 00:00:03+00", "$merge_dangerously", A, B, "dangerous")
    # D2 was aliased to B only: it leaves with B.
    assert ((join,), (B, D2), (A, B)) == (person.joins, person.split, person.users)


def test_illegal_ids_in_merges_are_listed(tmp_path: Path) -> None:
    """A merge naming a placeholder id ('null') lists it with the reason PostHog refuses it."""
    events = [*REALIASED, alias_event(8, "null", D3)]
    persons, events_glob = export(tmp_path, PERSONS, events)
    (illegal,) = fleet_audit(persons, events=events_glob).illegal
    assert "null" == illegal.distinct_id


def test_every_dialect_renders_the_same_query_shape() -> None:
    """Each engine's SQL differs only in the dialect's spellings; an unknown engine is named."""
    shapes = {
        engine: re.sub(r"\s+", " ", render_sql(engine, user_pattern="u-.*")).count("SELECT")
        for engine in DIALECTS
    }
    assert dict.fromkeys(DIALECTS, 5) == shapes
    assert "match(distinct_id, '^(?-s:u-\\\\d)$')" in render_sql("clickhouse", user_pattern=r"u-\d")
    with pytest.raises(ValueError, match="duckdb, clickhouse, bigquery, snowflake"):
        render_sql("oracle")


def test_the_printed_duckdb_query_runs_on_duckdb_and_agrees(tmp_path: Path) -> None:
    """--print-sql duckdb over views named as the exports gives the rows the check used."""
    persons, events = export(tmp_path, PERSONS, REALIASED)
    con = duckdb.connect()
    for name, glob in (("persons", persons), ("events", events)):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{glob}')")  # noqa: S608
    rows = con.execute(render_sql("duckdb")).fetchall()
    expected = [(1, "p1", A, 1, 0), (1, "p1", B, 1, 0), (1, "p1", D1, 0, 0)]
    assert expected == rows
