"""`idstitch fleet`: exit codes, output and plan of the console script, and its agreement with
`idstitch persons` on the same history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from idstitch.audit import person_graph
from support.audit import D1, D2, alias, clear, genesis, idstitch, json_lines, logout, write_log
from support.fleet import alias_event, command_event, device_event, person_rows, write_export

pytestmark = pytest.mark.processes


def exports_of_log(log: Path, folder: Path) -> tuple[str, str]:
    """The persons export PostHog would hold after ``log`` (``idstitch persons``' graph) and
    the events export of its records (its aliases, its commands' events), as Parquet."""
    graph = person_graph(log)
    persons = [
        row
        for person in graph.persons
        for row in person_rows(f"person-{person.number}", person.distinct_ids)
    ]
    events = []
    for n, line in enumerate(log.read_text().splitlines(), start=1):
        record = json.loads(line)
        user, device = record.get("user_id"), record["device_id"]
        if user is None:
            events.append(device_event(n * 2, device))
            continue
        if record.get("alias"):
            events.append(alias_event(n * 2, user, device))
        events.append(command_event(n * 2 + 1, user, device))
    write_export(folder / "persons" / "part-0.parquet", persons)
    write_export(folder / "events" / "part-0.parquet", events)
    return str(folder / "persons" / "*.parquet"), str(folder / "events" / "*.parquet")


def test_fleet_flags_the_same_persons_as_persons_on_the_same_history(tmp_path: Path) -> None:
    """A log's history as an export: fleet flags the persons `persons` flags, same branch."""
    log = tmp_path / "identity.jsonl"
    write_log(
        log,
        [genesis(), alias("user-a"), clear(), alias("user-b"), logout(D1, D2), alias("user-c", D2)],
    )
    persons, events = exports_of_log(log, tmp_path)
    plan = tmp_path / "plan.jsonl"
    result = idstitch(
        "fleet", "--persons", persons, "--events", events, "--plan", str(plan), "--json"
    )
    found = json_lines(result.stdout)
    flagged = [(o["person_id"], o["users"]) for o in found if o["type"] == "person"]
    graph = person_graph(log)
    expected = [(f"person-{p.number}", sorted(p.users)) for p in graph.persons if p.flagged]
    assert (1, expected, "") == (result.code, flagged, result.stderr)
    person = next(o for o in found if o["type"] == "person")
    joins = [(j["user"], j["event"], j["branch"]) for j in person["joins"]]
    assert ("user-a", [("user-b", "$create_alias", "attached")]) == (person["keep"], joins)
    assert [
        {
            "team_id": "1",
            "person_id": "person-1",
            "keep": "user-a",
            "keep_known": True,
            "distinct_ids_to_split": ["user-b"],
            "request": {
                "method": "POST",
                "path": "/api/projects/1/persons/person-1/split/",
                "json": {"distinct_ids_to_split": ["user-b"]},
            },
        }
    ] == json_lines(plan.read_text())


def test_fleet_exits_0_when_no_person_holds_two_users(tmp_path: Path) -> None:
    """One user per person: exit 0 and an ok line; the plan file is written empty."""
    write_export(tmp_path / "p.jsonl", person_rows("p1", ["user-a", D1]))
    write_export(tmp_path / "e.jsonl", [alias_event(1, "user-a", D1)])
    plan = tmp_path / "plan.jsonl"
    args = ["--persons", str(tmp_path / "p.jsonl"), "--events", str(tmp_path / "e.jsonl")]
    result = idstitch("fleet", *args, "--plan", str(plan))
    expected = (0, "ok: no person holds two users.\n", "", "")
    assert expected == (result.code, result.stdout, result.stderr, plan.read_text())


def test_fleet_text_names_the_person_the_join_and_the_split(tmp_path: Path) -> None:
    """Text output: the person, whom to keep and why, how the other user joined, the split."""
    rows = person_rows("p1", ["user-a", D1, "user-b"])
    events = [
        device_event(1, D1),
        alias_event(2, "user-a", D1),
        command_event(3, "user-a", D1),
        alias_event(4, "user-b", D1),
    ]
    write_export(tmp_path / "p.parquet", rows)
    write_export(tmp_path / "e.parquet", events)
    args = ["--persons", str(tmp_path / "p.parquet"), "--events", str(tmp_path / "e.parquet")]
    result = idstitch("fleet", *args)
    t2, t4 = "2024-01-01 00:00:02+00", "2024-01-01 00:00:04+00"
    expected = [
        "person p1  team 1  users: user-a, user-b  <- holds two users: two people merged into one",
        f"  devices: {D1}",
        f"  keep user-a: $create_alias(user-a <- {D1}) at {t2} created the person for it",
        (
            f"  user-b joined at {t4} by $create_alias(user-b <- {D1}): only the alias had a "
            "person: the distinct id is attached to it (that branch has no identified check)"
        ),
        "  split off: user-b",
        (
            f"device {D1} aliased to 2 users: $create_alias(user-a <- {D1}) at {t2}; "
            f"$create_alias(user-b <- {D1}) at {t4}"
        ),
        "failed: 1 person holds two or more users; --plan FILE writes the plan.",
    ]
    assert (1, expected, "") == (result.code, result.stdout.splitlines(), result.stderr)


def test_fleet_cannot_read_exits_2_with_one_line(tmp_path: Path) -> None:
    """A damaged export, a missing users file, no way to tell users: exit 2, one stderr line."""
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but not really")
    cases = [
        ["--persons", str(tmp_path / "bad.parquet"), "--user-pattern", "u.*"],
        ["--persons", str(tmp_path / "bad.parquet"), "--users", str(tmp_path / "none.txt")],
        ["--persons", str(tmp_path / "bad.parquet")],
        ["--events", str(tmp_path / "bad.parquet")],
    ]
    results = [idstitch("fleet", *args) for args in cases]
    shapes = [
        (r.code, r.stdout, r.stderr.count("\n"), r.stderr.startswith("idstitch: error: "))
        for r in results
    ]
    assert [(2, "", 1, True)] * len(cases) == shapes


def test_fleet_users_file_tells_users_without_events(tmp_path: Path) -> None:
    """--users FILE: the ids it lists are users; the kept user is then marked a guess."""
    write_export(tmp_path / "p.jsonl", person_rows("p1", ["user-a", D1, "user-b"]))
    (tmp_path / "users.txt").write_text("# our users\nuser-a\nuser-b\n")
    args = ["--persons", str(tmp_path / "p.jsonl"), "--users", str(tmp_path / "users.txt")]
    result = idstitch("fleet", *args, "--json")
    person, summary = json_lines(result.stdout)
    shown = (person["users"], person["devices"], person["keep_known"], person["split"])
    assert (1, (["user-a", "user-b"], [D1], False, ["user-b"])) == (result.code, shown)
    assert ("list", False) == (summary["users_from"], summary["explained"])


@pytest.mark.parametrize("engine", ["duckdb", "clickhouse", "bigquery", "snowflake"])
def test_print_sql_prints_the_check_for_each_engine(engine: str) -> None:
    """--print-sql ENGINE prints the query (the library's own rendering) and exits 0."""
    from idstitch.fleet import render_sql

    result = idstitch("fleet", "--print-sql", engine, "--user-pattern", "u-.*")
    assert (0, render_sql(engine, user_pattern="u-.*"), "") == (
        result.code,
        result.stdout,
        result.stderr,
    )


def test_print_sql_refuses_an_unknown_engine() -> None:
    """An engine the renderer does not know is a usage error naming the choices (exit 2)."""
    result = idstitch("fleet", "--print-sql", "oracle")
    assert (2, "invalid choice: 'oracle'") == (
        result.code,
        result.stderr.split(" (choose")[0][-24:],
    )
