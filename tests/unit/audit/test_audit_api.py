"""`idstitch.audit` from Python: each command's answer as a frozen result, on real logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from idstitch import audit
from idstitch.adapters.sinks import RecordingSink
from idstitch.audit import (
    Person,
    Step,
    UnusableInputError,
    Violation,
    diagnosis,
    diagram,
    person_graph,
    state_report,
    timeline,
    verify_log,
)
from idstitch.audit.cli import build_parser, parse_fast
from idstitch.machine import State, mermaid
from support.audit import (
    D1,
    D2,
    alias,
    genesis,
    in_process,
    json_lines,
    write_log,
)
from support.service import open_stitch


def _real_state_dir(folder: Path) -> tuple[Path, str]:
    """A state dir the library wrote: genesis, an aliasing response, a logout, a login.
    Returns the dir and the device id in force at the end."""
    stitch = open_stitch(folder, sink=RecordingSink())
    stitch.observe_authenticated_response("user-a")
    stitch.logout()
    stitch.login("user-b")
    device = stitch.device_id
    stitch.close()
    return folder, device


@pytest.mark.processes
def test_importing_the_package_loads_none_of_its_modules() -> None:
    """import idstitch.audit loads no submodule; each public name is imported on first use."""
    probe = (
        "import sys\n"
        "import idstitch.audit as audit\n"
        "before = sorted(m for m in sys.modules if m.startswith('idstitch.audit.'))\n"
        "audit.verify_log\n"
        "after = sorted(m for m in sys.modules if m.startswith('idstitch.audit.'))\n"
        "print(before, 'idstitch.audit._api' in after)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "[] True\n" == done.stdout


def test_every_public_name_resolves_to_what_its_home_module_defines() -> None:
    """Each name of __all__ resolves, lazily, to the one object its home module holds."""
    from idstitch.audit import _api, _persons, _show, _source, _timeline, _verify

    homes = (_api, _persons, _show, _source, _timeline, _verify)
    found = {name: getattr(audit, name) for name in audit.__all__}
    owners = {
        name: [home.__name__ for home in homes if getattr(home, name, None) is value]
        for name, value in found.items()
    }
    assert [] == [name for name, modules in owners.items() if not modules]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = audit.nothing


def test_timeline_of_a_log_the_library_wrote(tmp_path: Path) -> None:
    """timeline() gives one frozen row per record and the identity a replay ends with."""
    folder, device = _real_state_dir(tmp_path / "state")
    report = timeline(folder)
    rows = [(s.seq, s.kind, s.before, s.after, s.distinct_id, s.alias) for s in report.steps]
    first = report.steps[0].device_id
    assert [
        (1, "genesis", "initial", "anonymous", first, None),
        (2, "response", "anonymous", "aliased", "user-a", "sent"),
        (3, "logout", "aliased", "reset", device, None),
        (4, "login", "reset", "aliased", "user-b", "sent"),
    ] == rows
    assert (True, 4, {first: "user-a", device: "user-b"}) == (
        report.complete,
        report.records,
        dict(report.aliases),
    )
    assert report.identity is not None
    assert (State.ALIASED, "user-b", str(folder / "identity.jsonl")) == (
        report.identity.state,
        report.identity.distinct_id,
        report.path,
    )


def test_timeline_streams_rows_to_a_callback_and_keeps_none(tmp_path: Path) -> None:
    """on_step receives each row as it is read; the result then holds no rows, only the end."""
    folder, _ = _real_state_dir(tmp_path / "state")
    seen: list[Step] = []
    report = timeline(folder / "identity.jsonl", on_step=seen.append)
    assert ((), [1, 2, 3, 4], 4) == (report.steps, [s.seq for s in seen], report.records)
    assert timeline(folder).steps == tuple(seen)


def test_results_are_frozen_values(tmp_path: Path) -> None:
    """A result can be neither changed nor extended, and equal results compare equal."""
    folder, _ = _real_state_dir(tmp_path / "state")
    report = timeline(folder)
    with pytest.raises(AttributeError, match="TimelineReport is frozen"):
        report.records = 0
    with pytest.raises(AttributeError):
        report.steps[0].kind = "login"
    again = timeline(folder).steps
    assert (report.steps, hash(report.steps)) == (again, hash(again))


def test_timeline_names_the_damage_that_stopped_it(tmp_path: Path) -> None:
    """A torn last line: the rows before it, then the damage in the result, not an exception."""
    folder, _ = _real_state_dir(tmp_path / "state")
    log = folder / "identity.jsonl"
    data = log.read_bytes()
    log.write_bytes(data[:-10])
    report = timeline(log)
    assert report.damage is not None
    assert (False, 3, 4, "torn-tail") == (
        report.complete,
        report.records,
        report.damage.seq,
        report.damage.cause,
    )


def test_timeline_names_a_transition_the_table_refuses(tmp_path: Path) -> None:
    """A second genesis is refused: the result names it and the offset of its record."""
    log = tmp_path / "identity.jsonl"
    data = write_log(log, [genesis(), alias("user-a"), genesis(D2)])
    report = timeline(log)
    assert report.refused is not None
    offset = len(data) - len(data.splitlines(keepends=True)[-1])
    assert (False, 2, 3, offset) == (
        report.complete,
        report.records,
        report.refused.seq,
        report.refused_offset,
    )


def test_verify_log_of_a_log_the_library_wrote_holds_every_invariant(tmp_path: Path) -> None:
    """verify_log() of the library's own log: no violation over its four records."""
    folder, _ = _real_state_dir(tmp_path / "state")
    report = verify_log(folder)
    assert (True, True, 0, (), (), 4) == (
        report.ok,
        report.complete,
        report.count,
        report.violations,
        report.ids,
        report.records,
    )


def test_verify_log_lists_each_violation(tmp_path: Path) -> None:
    """A device aliased to a second user: L2 and L4 at that alias, in the result and, streamed,
    in the callback."""
    log = tmp_path / "identity.jsonl"
    data = write_log(log, [genesis(), alias("user-a"), alias("user-b", kind="login")])
    offset = len(data) - len(data.splitlines(keepends=True)[-1])
    report = verify_log(log)
    expected = (
        Violation(
            "L2",
            3,
            offset,
            f"device {D1} now has 2 standing aliases (seq 2, 3); PostHog merges on every one",
        ),
        Violation(
            "L4",
            3,
            offset,
            f"login aliases device {D1} to 'user-b', but it was already aliased to 'user-a' "
            "at seq 2",
        ),
    )
    assert (False, True, ("L2", "L4"), 2, 3, expected) == (
        report.ok,
        report.complete,
        report.ids,
        report.count,
        report.records,
        report.violations,
    )
    streamed: list[Violation] = []
    again = verify_log(log, on_violation=streamed.append)
    assert ((), expected, 2) == (again.violations, tuple(streamed), again.count)


def test_person_graph_of_a_log_the_library_wrote(tmp_path: Path) -> None:
    """person_graph(): two persons, one per user, each with its device; nobody flagged."""
    folder, device = _real_state_dir(tmp_path / "state")
    first = timeline(folder).steps[0].device_id
    report = person_graph(folder)
    assert [
        (1, ("user-a", first), ("user-a",), (first,), True, False),
        (2, ("user-b", device), ("user-b",), (device,), True, False),
    ] == [
        (p.number, p.distinct_ids, p.users, p.devices, p.identified, p.flagged)
        for p in report.persons
    ]
    assert (True, (), (), 0, 4, None) == (
        report.ok,
        report.flagged,
        report.refused,
        report.personless_devices,
        report.records,
        report.damage,
    )


def test_person_graph_flags_a_person_holding_two_users(tmp_path: Path) -> None:
    """One device aliased to two users: one person holds both, and it is flagged."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), alias("user-b", D1, kind="login")])
    report = person_graph(log)
    flagged = [p for p in report.persons if p.flagged]
    assert (False, (1,), [("user-a", "user-b")]) == (
        report.ok,
        report.flagged,
        [p.users for p in flagged],
    )
    assert isinstance(flagged[0], Person)


def test_persons_json_is_each_persons_as_json(tmp_path: Path) -> None:
    """`idstitch persons --json` prints each person exactly as Person.as_json() gives it."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), alias("user-b", D1, kind="login")])
    printed = json_lines(in_process("persons", "--json", str(log)).stdout)
    persons = [line for line in printed if line["type"] == "person"]
    assert [p.as_json() for p in person_graph(log).persons] == persons


def test_state_report_and_diagnosis_of_a_state_dir(tmp_path: Path) -> None:
    """state_report() holds the identity a run started now would hold; diagnosis() is healthy."""
    folder, device = _real_state_dir(tmp_path / "state")
    report = state_report(folder, env={})
    found = diagnosis(folder)
    assert (str(folder), "user-b", device, True, ()) == (
        report.state_dir,
        report.identity.distinct_id,
        report.identity.device_id,
        report.diagnosis.healthy,
        report.notes,
    )
    assert (True, False, []) == (found.healthy, found.repaired, found.problems)


def test_unusable_input_raises_the_one_error(tmp_path: Path) -> None:
    """A missing log, an empty dir and no dir at all each raise UnusableInputError."""
    messages = []
    for call in (
        lambda: verify_log(tmp_path / "missing.jsonl"),
        lambda: state_report(tmp_path),
        state_report,
    ):
        with pytest.raises(UnusableInputError) as caught:
            call()
        messages.append(str(caught.value))
    assert [
        f"{tmp_path / 'missing.jsonl'}: no such file",
        f"no state: {tmp_path} holds neither identity.jsonl nor telemetry.json",
        "a state dir is needed: DIR (--state-dir DIR) or --app NAME",
    ] == messages


def test_diagram_is_the_machines_mermaid() -> None:
    """diagram() is the state diagram drawn from the table; an unknown format is a ValueError."""
    assert mermaid() == diagram()
    with pytest.raises(ValueError, match="unknown diagram format 'dot': use 'mermaid' or 'text'"):
        diagram("dot")


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "LOG"],
        ["replay", "--json", "LOG"],
        ["verify", "LOG", "--strict", "--json"],
        ["persons", "--strict", "LOG"],
        ["replay", ""],
        ["replay"],
        ["replay", "--app", "mycli"],
        ["verify", "--state-dir", "DIR", "--json"],
        ["persons", "--app", "mycli", "--strict"],
        ["doctor", "--state-dir", "DIR"],
        ["diagram", "--format", "text"],
        ["show"],
        ["show", "--state-dir", "DIR", "--json"],
        ["show", "--app", "mycli"],
        ["show", "--app", "", "--state-dir", "DIR"],
        ["doctor"],
        ["doctor", "DIR", "--repair"],
        ["doctor", "--app", "mycli", "--json"],
        ["diagram"],
        ["diagram", "--format", "mermaid", "--json"],
        ["demo", "--keep", "DIR"],
        ["fleet", "--persons", "P", "--events", "E", "--plan", "F", "--json"],
        ["fleet", "--persons", "P", "--users", "U"],
        ["fleet", "--print-sql", "clickhouse", "--user-pattern", "u-.*"],
    ],
)
def test_the_hand_written_parse_gives_what_argparse_gives(argv: list[str]) -> None:
    """Every plain form the CLI parses by hand parses to exactly argparse's arguments."""
    assert vars(build_parser().parse_args(argv)) == parse_fast(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["--version"],
        ["replay", "A", "B"],
        ["replay", "-h"],
        ["replay", "--js", "LOG"],
        ["replay", "--", "LOG"],
        ["replay", "--json", "--json", "LOG"],
        ["replay", "-"],
        ["show", "--state-dir"],
        ["show", "--state-dir", "-x"],
        ["show", "--state-dir=DIR"],
        ["show", "DIR"],
        ["doctor", "A", "B"],
        ["diagram", "--format", "dot"],
        ["conform"],
        ["conform", "--json", "python", "driver.py"],
        ["conform", "--json", "--"],
        ["no-such-command"],
        ["fleet", "--print-sql", "oracle"],
        ["fleet", "--persons", "P", "--user-pattern", "-x"],
    ],
)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    """Help, the version, abbreviations, repeats and usage errors go to argparse."""
    assert parse_fast(argv) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["conform", "--", "driver"],
        ["conform", "--json", "--wire", "--", "python", "-m", "driver", "--json"],
        ["conform", "--vectors", "DIR", "--", "node", "driver.js", "--", "x"],
    ],
)
def test_conform_parses_by_hand_as_argparse_does(argv: list[str]) -> None:
    """`conform [options] -- COMMAND...`: everything after the first -- is the driver command,
    its own options included, by hand as through argparse."""
    from idstitch.audit._parser import parse

    assert parse(argv) == parse_fast(argv)


def test_replay_json_is_the_timelines_rows(tmp_path: Path) -> None:
    """`idstitch replay --json` prints each row exactly as the API's Step.as_json() gives it."""
    folder, _ = _real_state_dir(tmp_path / "state")
    printed = json_lines(in_process("replay", "--json", str(folder)).stdout)
    rows = [line for line in printed if line["type"] == "record"]
    assert [json.loads(json.dumps(s.as_json())) for s in timeline(folder).steps] == rows


def test_a_frozen_result_refuses_deletion_and_compares_only_with_its_own_kind() -> None:
    """A result's field cannot be deleted, it is unequal to another kind with the same values,
    and a result class must declare its fields as slots."""
    from idstitch.events._frozen import Frozen

    violation = Violation("L1", 1, 0, "a gap in seq")
    with pytest.raises(AttributeError, match="Violation is frozen: cannot delete seq"):
        del violation.seq
    assert (True, False) == (violation == Violation("L1", 1, 0, "a gap in seq"), violation == 1)
    with pytest.raises(TypeError, match="Loose must declare its fields as __slots__"):
        type("Loose", (Frozen,), {})
