"""The benchmark's code paths on tiny inputs: every bar yields its rows, the table and the JSON.

No timing is asserted here (tests stay deterministic); speed is only in
the benchmark's own output (``python -m bench``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from idstitch.events import validate_record
from idstitch.machine import replay
from idstitch.store import FileLog

from bench import _audit, _cli, _data, _delivery, _instructions, _replay, _starts
from bench._report import FIELDS, percentile, render_phases, render_table, render_tax, to_json


def tiny(data_dir: Path) -> _cli.Config:
    """A configuration that runs every measurement once, on a few records and two processes.

    B6 times two network conditions, one round each; B7 spools six commands.
    """
    return _cli.Config(
        records=60,
        warmup_records=20,
        runs=1,
        slow_runs=1,
        start_runs=2,
        change_runs=1,
        steady_starts=5,
        growth_records=40,
        processes=2,
        data_dir=data_dir,
        eventsourcing=False,
        tax_runs=1,
        context_runs=1,
        tax_conditions=("reachable", "refused"),
        delivery_commands=6,
        audit_runs=1,
        fleet_rows=3000,
        fleet_events=300,
        fleet_memory=None,
    )


def test_the_generated_log_is_what_filelog_would_write(tmp_path: Path) -> None:
    """The benchmark's fast writer produces byte for byte the log FileLog appends."""
    count = 23
    log = FileLog(tmp_path / "appended.jsonl")
    for at, kind, fields in _data.log_records(count):
        log.append(kind, fields, at=at)
    end = _data.write_log(tmp_path / "written.jsonl", count)
    assert log.path.read_bytes() == (tmp_path / "written.jsonl").read_bytes()
    assert (count, end) == (len(list(log.records(strict=True))), log.end)


def test_the_generated_log_replays_through_every_kind_of_edge(tmp_path: Path) -> None:
    """The cycle of the generated log is valid, strictly, and visits every event kind but import."""
    path = _data.cached_log(tmp_path, 30)
    records = list(FileLog(path).records(strict=True))
    for record in records:
        validate_record(record)
    result = replay(FileLog(path).records())
    assert (None, 30) == (result.error, result.last_seq)
    kinds = {"genesis", "response", "enqueue_failure", "login", "clear", "logout"}
    assert kinds == {record["kind"] for record in records}
    assert path == _data.cached_log(tmp_path, 30)


def test_every_replay_case_processes_every_record(tmp_path: Path) -> None:
    """Ours and each baseline of B1 go through the whole log and agree on its length."""
    path = _data.cached_log(tmp_path, 50)
    cases = [
        _replay.checked_replay,
        _replay.strict_replay,
        _replay.floor,
        _replay.bare_loads,
        _replay.transitions_replay,
    ]
    assert [50] * len(cases) == [case(path) for case in cases]


def test_the_transitions_baseline_reaches_the_state_the_fold_does(tmp_path: Path) -> None:
    """The transitions case does the fold's work: its machine ends where the replay does."""
    path = _data.cached_log(tmp_path, 45)
    result = replay(FileLog(path).records())
    assert (45, str(result.state)) == _replay.fire_all(path)


@pytest.mark.processes
@pytest.mark.slow
def test_instructions_are_counted_per_record_of_a_warm_pass(tmp_path: Path) -> None:
    """callgrind counts each case's instructions: the floor is bare orjson plus the hash link."""
    log = _data.cached_log(tmp_path, 400)
    count = _instructions.per_record(log, 400, ("bare_loads", "floor"))
    assert 1_000 < count["bare_loads"] < count["floor"]


def test_the_eventsourcing_baseline_replays_every_event(tmp_path: Path) -> None:
    """The eventsourcing recorder (a dev dependency) stores and replays each record."""
    path = _data.cached_log(tmp_path, 40)
    baseline = _replay.EventsourcingReplay()
    assert (40, 40) == (baseline.store(path), baseline())


@pytest.mark.processes
@pytest.mark.slow
def test_every_bar_yields_its_rows_the_table_and_the_json(tmp_path: Path) -> None:
    """A tiny run of B1-B5 gives one row per figure with every field filled, as table and JSON."""
    config = tiny(tmp_path / "data")
    rows, extra = _cli.run(config, _cli.BARS[:5])
    bars = [row.bar for row in rows]
    paths = len(_starts.START_PATHS)
    assert ["B1"] * 4 + ["B2"] * (paths + 2) + ["B3"] + ["B4"] * 3 + ["B5"] * 3 == bars
    for row in rows:
        assert row.measure
        assert row.ours >= 0
        assert row.unit
        if row.baseline:
            assert row.baseline_value is not None
            assert row.ratio is not None
        if row.target:
            assert row.met is not None
    table = render_table(rows)
    assert len(rows) + 2 == len(table.splitlines())
    document = json.loads(to_json(rows, settings={"records": config.records}, extra=extra))
    assert [[*FIELDS, "samples"]] * len(rows) == [list(r) for r in document["rows"]]
    assert [] == extra["heavy_modules_imported"]
    assert {name: [] for name in _starts.START_PATHS} == {
        name: path["heavy_modules"] for name, path in extra["start_paths"].items()
    }
    assert [] == extra["steady_starts"]["changed_files"]
    assert (1, 1) == (extra["contention"]["aliases_sent"], extra["contention"]["alias_records"])
    assert not (config.data_dir / "work").exists()


@pytest.mark.processes
@pytest.mark.slow
def test_the_telemetry_tax_and_delivery_bars(tmp_path: Path) -> None:
    """A tiny run of B6 and B7: every case timed, no event lost, and B7 delivered every event."""
    config = replace(tiny(tmp_path / "data"), phases=True)
    rows, extra = _cli.run(config, ("B6", "B7"))
    b6 = [row for row in rows if row.bar == "B6"]
    # Three runtimes in two conditions, and the persistent reachable case back to back.
    assert 3 * 2 + 1 == len(b6)
    assert ["≤ +5 ms"] * 2 == [row.target for row in b6 if row.met is not None]
    cases = extra["telemetry_tax"]
    assert ["persistent"] * 2 + ["ephemeral"] * 2 + ["container"] * 2 + ["persistent"] == [
        case["runtime"] for case in cases
    ]
    for case, row in zip(cases, b6, strict=True):
        assert 1 == case["runs"] == len(case["on_ms"]) == len(case["off_ms"])
        assert row.ratio == case["tax_median"] == case["on_median"] - case["off_median"]
        assert 0 == case["lost"], case  # each event of the on half delivered or still waiting
        if case["condition"] == "refused":  # everything kept for later
            assert (0, case["expected"]) == (case["delivered"], case["waiting"]), case
        elif case["runtime"] != "container":  # the bench waited for the detached senders
            assert (case["expected"], 0) == (case["delivered"], case["waiting"]), case
        # The container delivers in-process for at most a second: on a loaded machine that
        # can be none of it, and what the bound cut short waits in the spool (not lost).
    assert len(cases) + 2 == len(render_tax(cases).splitlines())
    # Phase by phase, in the one condition of the two where a sender starts.
    found = extra["phases"]
    assert [("reachable", half) for half in _delivery.PHASE_HALVES] == [
        (case["condition"], case["half"]) for case in found
    ]
    for case in found:
        assert all(case[phase] >= 0 for phase in _delivery.PHASES)
        # One run: each median is that run's own figure, so the phases add up to the total.
        assert sum(case[phase] for phase in _delivery.PHASES[:-1]) == pytest.approx(case["total"])
    assert len(found) + 2 == len(render_phases(found).splitlines())
    found = extra["delivery"]
    assert (6, 1) == (found["spooled_captures"], found["spooled_aliases"])
    assert found["all_arrived"]
    assert (7, 0, 0) == (found["distinct"], found["unknown"], found["waiting_after"])
    assert found["duplicates"] <= found["batch_in_flight"]
    b7 = [row for row in rows if row.bar == "B7"]
    assert [True] * 3 == [row.met for row in b7 if row.met is not None]
    assert [] == _delivery.Senders(config.data_dir).running()  # no sender left behind
    assert not (config.data_dir / "work").exists()


@pytest.mark.processes
def test_the_audit_tool_start_bar(tmp_path: Path) -> None:
    """A tiny run of B8: a row per command, the bar on three; replay and verify of a small log
    import none of the modules the tool avoids, and --strict imports orjson but not pydantic
    (every line of that log is proven by its pattern)."""
    rows, extra = _cli.run(tiny(tmp_path / "data"), ("B8",))
    assert ["B8"] * len(_audit.AUDIT_COMMANDS) == [row.bar for row in rows]
    assert ["≤ +40 ms"] * 3 + [""] * 2 == [row.target for row in rows]
    assert [True] * 3 == [row.met is not None for row in rows if row.target]
    for row in rows:
        assert row.ratio == row.ours - (row.baseline_value or 0)
    found = extra["audit_starts"]
    assert ([], []) == (
        found["replay"]["avoided_modules_imported"],
        found["verify"]["avoided_modules_imported"],
    )
    strict = found["replay --strict"]["avoided_modules_imported"]
    assert (True, False) == ("orjson" in strict, "pydantic" in strict)
    assert not (tmp_path / "data" / "work").exists()


def test_the_fleet_audit_bar_finds_every_planted_merge(tmp_path: Path) -> None:
    """A tiny run of B9: every planted merge found and explained as planted, none false."""
    rows, extra = _cli.run(tiny(tmp_path / "data"), ("B9",))
    found = extra["fleet"]
    assert (2, True) == (found["planted"], rows[0].met)
    assert (2, 0, True) == (found["found"], found["false"], found["explained_as_planted"])
    assert ["B9"] * 5 == [row.bar for row in rows]
    assert not (tmp_path / "data" / "work").exists()


def test_p95_is_the_nearest_rank() -> None:
    """percentile() is nearest-rank whatever the order: the 95th of 21 values is the 20th smallest,
    of 20 the 19th, of one value that value."""
    assert 20 == percentile(list(range(21, 0, -1)), 95)
    assert 19 == percentile(list(range(1, 21)), 95)
    assert 7 == percentile([7], 95)


def test_the_command_line_prints_the_table_and_writes_the_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m bench --only B1 --json FILE`` prints the table and writes the same rows."""
    monkeypatch.setattr(_cli, "QUICK", replace(tiny(tmp_path / "data"), records=40))
    out = tmp_path / "bench.json"
    assert 0 == _cli.main(["--quick", "--only", "B1", "--json", str(out)])
    printed = capsys.readouterr().out
    document = json.loads(out.read_text())
    assert 4 == len(document["rows"])
    for row in document["rows"]:
        assert row["measure"] in printed
    assert "bars met:" in printed
