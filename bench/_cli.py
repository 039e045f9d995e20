"""``python -m bench``: measure the bars B1-B9 against their baselines and print one table."""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import (
    _audit,
    _change,
    _data,
    _delivery,
    _fleet,
    _instructions,
    _process,
    _replay,
    _starts,
)
from bench._report import Row, median, percentile, render_phases, render_table, render_tax, to_json
from bench._timing import Case, interleaved

__all__ = ["FULL", "QUICK", "Config", "main", "run"]

#: Where the generated logs are cached (git-ignored).
DATA_DIR = Path(__file__).resolve().parent / ".data"


@dataclass(frozen=True)
class Config:
    """How big and how often: the full benchmark, ``--quick``, or a test's tiny one."""

    records: int
    warmup_records: int
    runs: int
    slow_runs: int
    start_runs: int
    change_runs: int
    steady_starts: int
    growth_records: int
    small_records: int = 10
    processes: int = 16
    data_dir: Path = DATA_DIR
    eventsourcing: bool = True
    #: B6: rounds of the persistent runtime (the bar's), and of ephemeral and container.
    tax_runs: int = 21
    context_runs: int = 11
    tax_conditions: tuple[str, ...] = tuple(_delivery.CONDITIONS)
    #: B7: commands spooled while PostHog is down (by ``processes`` CLIs at once).
    delivery_commands: int = 1_000
    #: B6 also timed phase by phase (``--phases``), in the conditions where a sender starts.
    phases: bool = False
    #: B8: interleaved rounds of the audit tool's commands (the bar's median is of 15).
    audit_runs: int = 15
    #: B9: the synthetic PostHog export's persons rows and events, and DuckDB's memory limit.
    fleet_rows: int = 10_000_000
    fleet_events: int = 1_000_000
    fleet_memory: str | None = "4GB"


FULL = Config(
    records=1_000_000,
    warmup_records=20_000,
    runs=5,
    slow_runs=3,
    start_runs=31,
    change_runs=25,
    steady_starts=10_000,
    growth_records=100_000,
)
QUICK = Config(
    records=50_000,
    warmup_records=5_000,
    runs=3,
    slow_runs=2,
    start_runs=15,
    change_runs=9,
    steady_starts=1_000,
    growth_records=20_000,
    tax_runs=5,
    context_runs=3,
    delivery_commands=100,
    fleet_rows=1_000_000,
    fleet_events=100_000,
)

BARS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9")


def _rate(records: int, seconds: list[float]) -> float:
    return records / median(seconds)


def replay_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B1: checked and strict replay against the floor, orjson, transitions (and eventsourcing)."""
    log = _data.cached_log(config.data_dir, config.records)
    warm = _data.cached_log(config.data_dir, config.warmup_records)
    fast, slow = config.runs, config.slow_runs
    cases = {
        "checked": Case(_replay.checked_replay, log, runs=fast),
        "floor": Case(_replay.floor, log, runs=fast),
        "loads": Case(_replay.bare_loads, log, runs=fast),
        "strict": Case(_replay.strict_replay, log, runs=fast, warmup_arg=warm),
        "transitions": Case(_replay.transitions_replay, log, runs=slow, warmup_arg=warm),
    }
    results = interleaved(cases)
    es = _replay.EventsourcingReplay()
    if config.eventsourcing and es.available():
        # Measured after the others: its store holds every event in memory, and the
        # collector would walk those objects while any other case runs. They are
        # frozen out of the collector's sight for its own replays, then dropped.
        started = time.perf_counter()
        stored = es.store(log)
        extra["eventsourcing_store_seconds"] = time.perf_counter() - started
        gc.collect()
        gc.freeze()
        try:
            # Storing ran the library's code already; a warm-up replay costs as much as a run.
            results |= interleaved({"eventsourcing": Case(es, None, runs=slow, warm=False)})
        finally:
            del es
            gc.unfreeze()
            gc.collect()
    n = config.records
    rate = {name: _rate(count, times) for name, (count, times) in results.items()}
    samples = {name: times for name, (_, times) in results.items()}
    for name, (count, _) in results.items():
        if count != n:
            raise RuntimeError(f"{name} processed {count} records, not {n}")

    def row(measure: str, ours: str, base: str, label: str, target: float | None) -> Row:
        ratio = rate[ours] / rate[base]
        return Row(
            bar="B1",
            measure=measure,
            ours=rate[ours],
            unit="rec/s",
            baseline=label,
            baseline_value=rate[base],
            compare="ratio",
            ratio=ratio,
            target="" if target is None else f"≥ {target:g}x",
            met=None if target is None else ratio >= target,
            runs=len(samples[ours]),
            samples={ours: samples[ours], base: samples[base]},
        )

    rows = [
        row(
            f"checked replay, {n:,} records",
            "checked",
            "floor",
            "floor: orjson.loads + blake2b link",
            0.55,
        ),
        row(
            f"checked replay, {n:,} records",
            "checked",
            "transitions",
            "checked reader + transitions.Machine trigger per record",
            4,
        ),
        row(
            f"--strict replay, {n:,} records",
            "strict",
            "floor",
            "floor: orjson.loads + blake2b link",
            0.50,
        ),
        row(
            "bare orjson.loads per line",
            "loads",
            "floor",
            "floor: orjson.loads + blake2b link",
            None,
        ),
    ]
    if "eventsourcing" in rate:
        rows.append(
            row(
                f"checked replay, {n:,} records",
                "checked",
                "eventsourcing",
                "eventsourcing: POPO recorder replay",
                None,
            )
        )
        rows.append(
            Row(
                bar="B1",
                measure=f"eventsourcing: store {stored:,} events (in-memory recorder)",
                ours=stored / extra["eventsourcing_store_seconds"],
                unit="rec/s",
                runs=1,
            )
        )
    else:
        extra["eventsourcing"] = "not installed: pip install -e '.[bench]'"
    return rows


def startup_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B2 on every start path (each against bare python, and what it imported) and B4's
    fresh-process growth."""
    extra["compiled"] = _process.compile_package()
    work = config.data_dir / "work"
    log = _data.cached_log(config.data_dir, max(config.records, config.growth_records))
    small, big = work / "small", work / "big"
    for folder in (small, big):
        if folder.exists():
            shutil.rmtree(folder)
    _data.make_state_dir(small, log, config.small_records)
    _data.make_state_dir(big, log, config.growth_records)
    starts = _starts.Starts(work / "starts", small, _data.STEADY_USER)
    steady = _starts.START_PATHS["a"]
    os.sync()  # the big log's pages are written back now, not during the timed starts
    before = {folder.name: _change.dir_fingerprint(folder) for folder in (small, big)}
    commands: dict[str, _process.Command] = {"pass": [sys.executable, "-c", "pass"]}
    commands |= {name: starts.factory(path) for name, path in _starts.START_PATHS.items()}
    commands["big"] = starts.command(steady, big)
    times = _process.timed_starts(commands, config.start_runs)
    found = {
        name: starts.report(path, _process.child_env())
        for name, path in _starts.START_PATHS.items()
    }
    starts.clean()
    after = {folder.name: _change.dir_fingerprint(folder) for folder in (small, big)}
    extra["steady_state_modules"] = found["a"]["modules"]
    extra["fresh_starts_wrote"] = sorted(name for name in before if before[name] != after[name])
    heavy = {name: _heavy(report["modules"]) for name, report in found.items()}
    extra["heavy_modules_imported"] = sorted({m for names in heavy.values() for m in names})
    ms = {name: [t * 1000 for t in values] for name, values in times.items()}
    bare, bare_p95 = median(ms["pass"]), percentile(ms["pass"], 95)
    extra["start_paths"] = {
        name: {
            "title": path.title,
            "median_ms": median(ms[name]),
            "p95_ms": percentile(ms[name], 95),
            "over_pass_median_ms": median(ms[name]) - bare,
            "over_pass_p95_ms": percentile(ms[name], 95) - bare_p95,
            "modules": len(found[name]["modules"]),
            "heavy_modules": heavy[name],
            "storage": found[name]["storage"],
            "runtime": found[name]["runtime"],
        }
        for name, path in _starts.START_PATHS.items()
    }
    runs = config.start_runs
    spread = {name: percentile(ms[name], 95) - bare_p95 for name in _starts.START_PATHS}
    rows = [
        Row(
            bar="B2",
            measure=f"start {name}: {path.title} (p95 {spread[name]:+.1f} ms)",
            ours=median(ms[name]),
            unit="ms",
            baseline="python -c pass",
            baseline_value=bare,
            compare="difference",
            ratio=median(ms[name]) - bare,
            target="≤ +10 ms, none of the four",
            met=median(ms[name]) - bare <= 10
            and not heavy[name]
            and (path.writes or not extra["fresh_starts_wrote"]),
            runs=runs,
            samples={name: ms[name], "pass": ms["pass"]},
        )
        for name, path in _starts.START_PATHS.items()
    ]
    modules = found["a"]["modules"]
    growth = median(ms["big"]) / median(ms["a"])
    return [
        *rows,
        Row(
            bar="B2",
            measure="modules the steady-state path imports",
            ours=len(modules),
            unit="modules",
            target="no " + ", ".join(_process.HEAVY_MODULES),
            met=not heavy["a"],
            runs=1,
        ),
        Row(
            bar="B2",
            measure="heavy packages any start path imports",
            ours=len(extra["heavy_modules_imported"]),
            unit="packages",
            target="none",
            met=not extra["heavy_modules_imported"],
            runs=1,
        ),
        Row(
            bar="B4",
            measure=f"start-up, fresh interpreter, {config.growth_records:,}-record log",
            ours=median(ms["big"]),
            unit="ms",
            baseline=f"{config.small_records}-record log",
            baseline_value=median(ms["a"]),
            compare="inverse",
            ratio=growth,
            target="≤ 1.2x",
            met=growth <= 1.2,
            runs=runs,
            samples={"big": ms["big"], "steady": ms["a"]},
        ),
    ]


def _heavy(modules: list[str]) -> list[str]:
    """The packages of spec B2's four (posthog, pydantic, transitions, orjson) among ``modules``."""
    return sorted({m.split(".")[0] for m in modules} & set(_process.HEAVY_MODULES))


def change_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B3: one persistent identity change against one bare write + fsync."""
    work = config.data_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    times = _change.change_cost(work, config.change_runs)
    us = {name: [t * 1e6 for t in values] for name, values in times.items()}
    ours, bare = median(us["change"]), median(us["write_fsync"])
    return [
        Row(
            bar="B3",
            measure="one identity change (login, fresh dir, persistent)",
            ours=ours,
            unit="µs",
            baseline="write + fsync of the same bytes",
            baseline_value=bare,
            compare="inverse",
            ratio=ours / bare,
            target="≤ 4x",
            met=ours / bare <= 4,
            runs=config.change_runs,
            samples=us,
        )
    ]


def growth_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B4: in-process steady-state starts write nothing."""
    work = config.data_dir / "work"
    log = _data.cached_log(config.data_dir, max(config.records, config.growth_records))
    folder = work / "steady"
    if folder.exists():
        shutil.rmtree(folder)
    _data.make_state_dir(folder, log, config.small_records)
    found = _change.steady_starts(folder, _data.STEADY_USER, config.steady_starts)
    extra["steady_starts"] = found
    return [
        Row(
            bar="B4",
            measure=f"{config.steady_starts:,} steady-state starts (in-process)",
            ours=len(found["changed_files"]),
            unit="files changed",
            target="nothing written",
            met=not found["changed_files"],
            runs=1,
        ),
        Row(
            bar="B4",
            measure="one steady-state start (in-process)",
            ours=found["seconds_per_start"] * 1e6,
            unit="µs",
            runs=config.steady_starts,
        ),
    ]


def contention_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B5: processes racing on their first response alias exactly once, within 2 s."""
    work = config.data_dir / "work"
    folder = work / "contention"
    if folder.exists():
        shutil.rmtree(folder)
    found = _process.contention(folder, config.processes)
    extra["contention"] = found
    once = found["aliases_sent"] == 1 and found["alias_records"] == 1
    return [
        Row(
            bar="B5",
            measure=f"{found['processes']} processes, first response at once: aliases",
            ours=found["aliases_sent"],
            unit="alias",
            target="exactly 1",
            met=once,
            runs=1,
        ),
        Row(
            bar="B5",
            measure=f"{found['processes']} processes: release to last done",
            ours=found["seconds_from_release"],
            unit="s",
            target="≤ 2 s",
            met=found["seconds_from_release"] <= 2.0,
            runs=1,
        ),
        Row(
            bar="B5",
            measure=f"{found['processes']} processes: first start to last exit",
            ours=found["seconds_from_start"],
            unit="s",
            runs=1,
        ),
    ]


def tax_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B6: the click CLI's command with telemetry on against ``DO_NOT_TRACK=1``, per condition."""
    extra["compiled"] = _process.compile_package()
    work = config.data_dir / "work" / "tax"
    cases = _delivery.telemetry_tax(
        work, config.tax_runs, config.context_runs, config.tax_conditions
    )
    extra["telemetry_tax"] = cases
    if config.phases:
        extra["phases"] = [
            found
            for condition in ("reachable", "latency")
            if condition in config.tax_conditions
            for found in _delivery.phases(work, condition, config.tax_runs)
        ]
    rows = []
    for case in cases:
        bar = case["runtime"] == "persistent" and case["waited_for_senders"]
        rows.append(
            Row(
                bar="B6",
                measure=f"telemetry tax: {case['label']} ({case['runtime']})",
                ours=case["on_median"],
                unit="ms",
                baseline="DO_NOT_TRACK=1",
                baseline_value=case["off_median"],
                compare="difference",
                ratio=case["tax_median"],
                target="≤ +5 ms" if bar else "",
                met=case["tax_median"] <= 5 if bar else None,
                runs=case["runs"],
                samples={"on": case["on_ms"], "off": case["off_ms"]},
            )
        )
    return rows


def delivery_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B7: commands spooled while PostHog is down, then delivered with the sender killed once."""
    work = config.data_dir / "work" / "delivery"
    found = _delivery.delivery(work, config.delivery_commands, config.processes)
    extra["delivery"] = found
    n, clis, spooled = found["commands"], found["workers"], found["spooled"]

    def row(measure: str, ours: float, unit: str, target: str = "", met: bool | None = None) -> Row:
        return Row(bar="B7", measure=measure, ours=ours, unit=unit, target=target, met=met, runs=1)

    return [
        row(
            f"{n:,} commands, {clis} CLIs at once, PostHog down: events spooled",
            spooled,
            "events",
            f"{n:,} commands + the alias",
            found["spooled_captures"] == n and found["waiting_before"] == spooled,
        ),
        row(
            "PostHog up, the sender SIGKILLed mid-batch: distinct uuids arrived",
            found["distinct"],
            "events",
            f"all {spooled:,}",
            found["all_arrived"] and found["waiting_after"] == 0,
        ),
        row(
            "duplicate deliveries (PostHog drops them by uuid)",
            found["duplicates"],
            "events",
            f"≤ the batch in flight ({found['batch_in_flight']})",
            found["duplicates"] <= found["batch_in_flight"],
        ),
        row(
            "time to drain (both senders' runs, the imposed hold left out)",
            found["drain_seconds"],
            "s",
        ),
        row(
            f"{n:,} commands while PostHog is down, {clis} at once: wall time",
            found["offline_seconds"],
            "s",
        ),
    ]


#: The log the instruction counts are taken on: long enough to dwarf a pass's set-up.
INSTRUCTION_RECORDS = 5_000


def instruction_rows(config: Config) -> list[Row]:
    """B1 in instructions per record (callgrind): deterministic, for context beside the times."""
    records = INSTRUCTION_RECORDS
    log = _data.cached_log(config.data_dir, records)
    count = _instructions.per_record(log, records)
    where = f"(callgrind, {records:,} records)"

    def row(measure: str, ours: str, base: str, label: str) -> Row:
        return Row(
            bar="B1",
            measure=f"{measure}: instructions per record {where}",
            ours=round(count[ours]),
            unit="instr/rec",
            baseline=label,
            baseline_value=round(count[base]),
            compare="inverse",
            ratio=count[ours] / count[base],
        )

    floor = "floor: orjson.loads + blake2b link"
    return [
        row("checked replay", "checked_replay", "floor", floor),
        row("checked replay", "checked_replay", "transitions_replay", "transitions baseline"),
        row("--strict replay", "strict_replay", "floor", floor),
        row("bare orjson.loads per line", "bare_loads", "floor", floor),
    ]


#: B8's bar: each of the three commands within this much of ``python -c pass`` (median).
AUDIT_START_MS = 40


def audit_start_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B8: ``idstitch replay``, ``verify`` and ``show`` of a small log against
    ``python -c pass`` (and, for context, ``persons`` and ``replay --strict``)."""
    extra["compiled"] = _process.compile_package()
    work = config.data_dir / "work" / "audit"
    log = _data.cached_log(config.data_dir, _audit.SMALL_RECORDS)
    state_dir = work / "state"
    _data.make_state_dir(state_dir, log, _audit.SMALL_RECORDS)
    starts = _audit.AuditStarts(log, state_dir)
    commands: dict[str, _process.Command] = {"pass": [sys.executable, "-c", "pass"]}
    commands |= {name: starts.command(name) for name in _audit.AUDIT_COMMANDS}
    times = _process.timed_starts(commands, config.audit_runs)
    ms = {name: [t * 1000 for t in values] for name, values in times.items()}
    bare = median(ms["pass"])
    env = _process.child_env()
    found = {name: starts.modules(name, env) for name in _audit.AUDIT_COMMANDS}
    extra["audit_starts"] = {
        name: {
            "median_ms": median(ms[name]),
            "over_pass_median_ms": median(ms[name]) - bare,
            "p95_ms": percentile(ms[name], 95),
            "avoided_modules_imported": found[name],
        }
        for name in _audit.AUDIT_COMMANDS
    }
    rows = []
    for name, command in _audit.AUDIT_COMMANDS.items():
        over = median(ms[name]) - bare
        imported = ", ".join(found[name]) or "none of the avoided"
        rows.append(
            Row(
                bar="B8",
                measure=f"idstitch {name}, {_audit.SMALL_RECORDS}-record log (imports {imported})",
                ours=median(ms[name]),
                unit="ms",
                baseline="python -c pass",
                baseline_value=bare,
                compare="difference",
                ratio=over,
                target=f"≤ +{AUDIT_START_MS} ms" if command.bar else "",
                met=over <= AUDIT_START_MS if command.bar else None,
                runs=config.audit_runs,
                samples={name: ms[name], "pass": ms["pass"]},
            )
        )
    return rows


def fleet_rows(config: Config, extra: dict[str, Any]) -> list[Row]:
    """B9: the fleet check, and the check with its explanation, over a synthetic export."""
    folder = config.data_dir / "work" / "fleet"
    rows, events, planted = _fleet.generate(folder, config.fleet_rows, config.fleet_events)
    check = _fleet.measure(folder, explain=False, memory_limit=config.fleet_memory)
    explained = _fleet.measure(folder, explain=True, memory_limit=config.fleet_memory)
    wanted = {person: [[f"u-{person[2:]}-b"], ["attached"]] for person in planted}
    found = set(check["flagged"])
    missed, false = len(planted - found), len(found - planted)
    exact = explained["flagged"] == wanted
    extra["fleet"] = {
        "rows": rows,
        "events": events,
        "planted": len(planted),
        "found": len(found & planted),
        "false": false,
        "explained_as_planted": exact,
        "memory_limit": config.fleet_memory,
        "check_seconds": round(check["seconds"], 3),
        "explain_seconds": round(explained["seconds"], 3),
        "check_peak_mb": round(check["peak_kb"] / 1024),
        "explain_peak_mb": round(explained["peak_kb"] / 1024),
    }

    def row(measure: str, ours: float, unit: str, target: str = "", met: bool | None = None) -> Row:
        return Row(bar="B9", measure=measure, ours=ours, unit=unit, target=target, met=met, runs=1)

    return [
        row(
            "planted merges found, none false",
            len(found & planted),
            "persons",
            f"all {len(planted)}, 0 false",
            missed == 0 and false == 0 and exact,
        ),
        row(f"check over {rows:,} persons rows", rows / check["seconds"], "rows/s"),
        row("check, peak memory", check["peak_kb"] / 1024, "MB"),
        row(
            f"check + explanation ({events:,} events)",
            explained["seconds"],
            "s",
        ),
        row("check + explanation, peak memory", explained["peak_kb"] / 1024, "MB"),
    ]


SECTIONS: dict[str, Callable[[Config, dict[str, Any]], list[Row]]] = {
    "B1": replay_rows,
    "B2": startup_rows,
    "B3": change_rows,
    "B4": growth_rows,
    "B5": contention_rows,
    "B6": tax_rows,
    "B7": delivery_rows,
    "B8": audit_start_rows,
    "B9": fleet_rows,
}


def run(
    config: Config, bars: Sequence[str] = BARS, *, progress: bool = False
) -> tuple[list[Row], dict[str, Any]]:
    """Measure ``bars`` (B2 also gives B4's fresh-process row); the rows and the details."""
    extra: dict[str, Any] = {}
    rows: list[Row] = []
    work = config.data_dir / "work"
    if work.exists():
        shutil.rmtree(work)
    try:
        for bar in BARS:
            if bar not in bars:
                continue
            if progress:
                print(f"measuring {bar}...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            rows += SECTIONS[bar](config, extra)
            extra.setdefault("section_seconds", {})[bar] = round(time.perf_counter() - started, 2)
    finally:
        if work.exists():
            shutil.rmtree(work)
    order = {bar: i for i, bar in enumerate(BARS)}
    rows.sort(key=lambda r: order[r.bar])
    return rows, extra


def _notes(rows: Sequence[Row], extra: dict[str, Any]) -> str:
    lines = []
    if "steady_state_modules" in extra:
        modules = extra["steady_state_modules"]
        lines.append(f"steady-state path imports {len(modules)} modules: {', '.join(modules)}")
        heavy = extra["heavy_modules_imported"]
        lines.append(
            f"  of {', '.join(_process.HEAVY_MODULES)}, any start path: "
            f"{', '.join(heavy) if heavy else 'none'}"
        )
        for name, path in extra["start_paths"].items():
            lines.append(
                f"  start {name} ({path['title']}): median {path['over_pass_median_ms']:+.1f} ms, "
                f"p95 {path['over_pass_p95_ms']:+.1f} ms over python -c pass; "
                f"{path['modules']} modules, heavy: {', '.join(path['heavy_modules']) or 'none'}"
            )
    if "contention" in extra:
        found = extra["contention"]
        lines.append(
            f"contention: {found['aliases_sent']} alias sent, "
            f"{found['alias_records']} alias record, distinct ids {found['distinct_ids']}"
        )
    if "fleet" in extra:
        found = extra["fleet"]
        lines.append(
            f"fleet: {found['rows']:,} persons rows, {found['events']:,} events, "
            f"{found['planted']} planted merges, {found['found']} found, {found['false']} false, "
            f"explained as planted: {found['explained_as_planted']}; check "
            f"{found['check_seconds']} s ({found['check_peak_mb']} MB peak), with explanation "
            f"{found['explain_seconds']} s ({found['explain_peak_mb']} MB peak), "
            f"DuckDB memory limit {found['memory_limit']}"
        )
    if "eventsourcing" in extra:
        lines.append(f"eventsourcing: {extra['eventsourcing']}")
    if "telemetry_tax" in extra:
        lines += [
            "",
            (
                "B6 in ms, telemetry on against DO_NOT_TRACK=1 (p95: nearest rank; the "
                "container is stood for by delivery='in_process' in an ephemeral run):"
            ),
            render_tax(extra["telemetry_tax"]),
            "",
        ]
    if "phases" in extra:
        lines += [
            (
                "B6 phase by phase, persistent (medians, ms; the wrapper's exit spools the "
                "event and spawns the sender):"
            ),
            render_phases(extra["phases"]),
            "",
        ]
    if "delivery" in extra:
        found = extra["delivery"]
        lines.append(
            f"delivery: {found['spooled']:,} events spooled ({found['spooled_captures']:,} "
            f"commands, {found['spooled_aliases']} alias) in {found['segments']:,} segments; "
            f"{found['requests']:,} requests; killed after {found['killed_after_requests']:,} "
            f"requests, {found['arrived_before_kill']:,} events in, "
            f"{'while an answer was held' if found['killed_while_held'] else 'between requests'}"
            f"; {found['distinct']:,} distinct uuids, {found['duplicates']} duplicates, "
            f"{found['waiting_after']} left; a command took {found['command_median_ms']:.0f} ms "
            f"(median, p95 {found['command_p95_ms']:.0f} ms) with PostHog down"
        )
    met = [r for r in rows if r.met is not None]
    lines.append(f"bars met: {sum(1 for r in met if r.met)} of {len(met)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 0 when it ran (whether or not every bar is met)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 2 minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows and details to FILE")
    parser.add_argument(
        "--only", metavar="BARS", help="comma-separated bars to measure (default: all, B1-B9)"
    )
    parser.add_argument("--records", type=int, help="length of the B1 log (default 1,000,000)")
    parser.add_argument(
        "--fleet-rows", type=int, help="B9's persons rows (default 10,000,000; events a tenth)"
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="also time B6 phase by phase where a sender starts (about 1 minute)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count B1's instructions per record with valgrind's callgrind (about 2 minutes)",
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.records:
        config = replace(config, records=args.records)
    if args.fleet_rows:
        config = replace(config, fleet_rows=args.fleet_rows, fleet_events=args.fleet_rows // 10)
    if args.phases:
        config = replace(config, phases=True)
    bars = tuple(b.strip().upper() for b in args.only.split(",")) if args.only else BARS
    unknown = sorted(set(bars) - set(BARS))
    if unknown:
        parser.error(f"unknown bars {unknown}; choose from {', '.join(BARS)}")
    started = time.perf_counter()
    rows, extra = run(config, bars, progress=True)
    if args.instructions and "B1" in bars:
        if _instructions.available():
            print("counting B1's instructions...", file=sys.stderr, flush=True)
            rows += instruction_rows(config)
            rows.sort(key=lambda row: BARS.index(row.bar))  # stable: B1's rows stay together
        else:
            print("valgrind is not installed: no instruction counts", file=sys.stderr)
    extra["seconds"] = round(time.perf_counter() - started, 2)
    print(render_table(rows))
    print()
    print(_notes(rows, extra))
    print(f"({'quick' if args.quick else 'full'} run, {extra['seconds']:.0f} s)")
    if args.json:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
        Path(args.json).write_text(to_json(rows, settings=settings, extra=extra) + "\n")
    return 0
