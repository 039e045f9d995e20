"""The audit tool for people who never read the spec: promises in words, a text diagram, the
runtime's signal, and every state-dir command reached by --app or --state-dir."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from idstitch.adapters.sinks import RecordingSink
from idstitch.audit import INVARIANTS
from idstitch.machine import INITIAL, TRANSITIONS, State
from idstitch.service._runtime import CI_VARIABLES
from support.audit import alias, clear, genesis, idstitch, json_lines, write_log
from support.service import DeviceIds, open_stitch

pytestmark = pytest.mark.processes

#: No variable that would decide the runtime, so that each test sets the one it means.
QUIET = dict.fromkeys(CI_VARIABLES, "")


def test_every_violation_names_its_promise_in_words_in_text_and_json(tmp_path: Path) -> None:
    """A double alias: each text row quotes the promise it broke; each JSON row keeps the id
    and adds the same words as "promise"; the summary carries every promise checked."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), clear(), alias("user-b")])
    text = idstitch("verify", str(log))
    as_json = json_lines(idstitch("verify", "--json", str(log)).stdout)
    quoted = re.findall(r'^(L\d|T) +seq \d+ broke "([^"]+)": ', text.stdout, re.MULTILINE)
    promises = [(row["id"], row["promise"]) for row in as_json if row["type"] == "violation"]
    expected = [("L2", INVARIANTS["L2"]), ("L4", INVARIANTS["L4"])]
    assert (1, expected, expected, INVARIANTS) == (
        text.code,
        quoted,
        promises,
        as_json[-1]["invariants"],
    )


def test_the_text_diagram_lists_every_transition_under_its_state() -> None:
    """--format text: each row of TRANSITIONS once, as `event [guard] --> target  why`, under
    its source state's heading, in at most 80 columns and without mermaid's <br/>."""
    result = idstitch("diagram", "--format", "text")
    drawn: list[tuple[str, str, str, str]] = []
    heading = ""
    for line in result.stdout.splitlines():
        edge = re.fullmatch(r"  (.+?) +--> (\S+) +(.+)", line)
        if edge is not None:
            drawn.append((heading, edge[1], edge[2], edge[3]))
        elif line and not line.startswith(" "):
            heading = line
    headings = {INITIAL: "(start: an empty log)", **{str(s): str(s) for s in State}}
    expected = [
        (
            headings[row.source],
            row.event + (f" [{row.guard}]" if row.guard else "") + (" / alias" * row.alias),
            str(row.target),
            row.why,
        )
        for source in headings
        for row in TRANSITIONS
        if row.source == source
    ]
    widest = max(len(line) for line in result.stdout.splitlines())
    assert (0, expected, "") == (result.code, drawn, result.stderr)
    assert (True, False) == (widest <= 80, "<br/>" in result.stdout)


def test_the_default_diagram_is_still_mermaid() -> None:
    """Without --format the diagram is mermaid, as the contract says."""
    assert idstitch("diagram").stdout == idstitch("diagram", "--format", "mermaid").stdout


def _state(folder: Path) -> None:
    """A state dir where the library aliased user-a."""
    open_stitch(folder, sink=RecordingSink(), devices=DeviceIds()).login("user-a")


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"CI": "true"}, "ephemeral (CI variable CI)"),
        ({"IDSTITCH_RUNTIME": "persistent"}, "persistent (IDSTITCH_RUNTIME)"),
    ],
)
def test_show_says_which_signal_decided_the_runtime(
    tmp_path: Path, env: dict[str, str], said: str
) -> None:
    """show's runtime row names the signal behind it; --json carries it as runtime_signal."""
    _state(tmp_path / "state")
    args = ("show", "--state-dir", str(tmp_path / "state"))
    rows = dict(
        re.findall(r"^  (\w[\w ]*?)  +(.*)$", idstitch(*args, env={**QUIET, **env}).stdout, re.M)
    )
    shown = json_lines(idstitch(*args, "--json", env={**QUIET, **env}).stdout)[0]
    runtime, _, signal = said.partition(" (")
    assert (said, runtime, signal.rstrip(")")) == (
        rows["runtime now"],
        shown["runtime"],
        shown["runtime_signal"],
    )


@pytest.mark.parametrize("command", ["replay", "verify", "persons", "doctor"])
def test_every_state_dir_command_takes_app_and_state_dir(tmp_path: Path, command: str) -> None:
    """--app NAME (its default state dir) and --state-dir DIR give exactly what naming the dir
    as LOG (DIR for doctor) gives."""
    state = tmp_path / "xdg" / "mycli"
    _state(state)
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg"), "IDSTITCH_RUNTIME": "persistent"}
    named = idstitch(command, str(state), env=env)
    by_app = idstitch(command, "--app", "mycli", env=env)
    by_dir = idstitch(command, "--state-dir", str(state), env=env)
    assert (0, "") == (named.code, named.stderr)
    assert (named, named) == (by_app, by_dir)


@pytest.mark.parametrize("command", ["replay", "verify", "persons"])
def test_a_log_command_without_a_log_exits_2_with_a_clear_error(
    tmp_path: Path, command: str
) -> None:
    """Neither LOG nor --app/--state-dir, both, an app with no state dir, a dir with no log:
    one line on stderr each, exit 2."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    results = [
        idstitch(command, env=env),
        idstitch(command, str(empty), "--app", "mycli", env=env),
        idstitch(command, "--app", "mycli", env=env),
        idstitch(command, "--state-dir", str(empty), env=env),
    ]
    expected = [
        "a log is needed: LOG (a file or a state dir), --state-dir DIR or --app NAME",
        "give the log once: LOG, or --state-dir DIR or --app NAME",
        f"no state: {tmp_path / 'xdg' / 'mycli'} (mycli's state dir) does not exist",
        f"no log: {empty} holds no identity.jsonl",
    ]
    assert [(2, "", f"idstitch: error: {line}\n") for line in expected] == [
        tuple(result) for result in results
    ]


def test_doctor_takes_its_dir_once() -> None:
    """doctor DIR --state-dir DIR is a usage error, exit 2."""
    result = idstitch("doctor", "a", "--state-dir", "b")
    message = "idstitch: error: give the state dir once: DIR or --state-dir DIR, not both\n"
    assert (2, "", message) == tuple(result)


@pytest.mark.parametrize(
    ("choice", "env", "said", "sends"),
    [
        (None, {}, "on (no choice recorded: the default)", True),
        ("disable", {}, "off (the user turned it off)", False),
        ("enable", {}, "on (the user turned it on)", True),
        ("enable", {"DO_NOT_TRACK": "1"}, "off (DO_NOT_TRACK is set)", False),
        ("disable", {"DO_NOT_TRACK": "1"}, "off (DO_NOT_TRACK is set)", False),
    ],
    ids=["default", "disabled", "enabled", "env-over-enabled", "env-over-disabled"],
)
def test_show_says_whether_a_run_would_send_and_why(
    tmp_path: Path, choice: str | None, env: dict[str, str], said: str, sends: bool
) -> None:
    """show's telemetry row: the environment's opt-out wins over the user's recorded choice,
    which wins over the default; --json carries the choice and whether a run would send."""
    state = tmp_path / "state"
    stitch = open_stitch(state, sink=RecordingSink(), devices=DeviceIds())
    stitch.login("user-a")
    if choice is not None:
        getattr(stitch, f"{choice}_telemetry")()
    args = ("show", "--state-dir", str(state))
    environ = {**QUIET, "DO_NOT_TRACK": "", **env}
    rows = dict(re.findall(r"^  (\w[\w ]*?)  +(.*)$", idstitch(*args, env=environ).stdout, re.M))
    shown = json_lines(idstitch(*args, "--json", env=environ).stdout)[0]
    recorded = {None: None, "disable": "disabled", "enable": "enabled"}[choice]
    assert (said, recorded, sends) == (rows["telemetry"], shown["telemetry"], shown["sends"])
