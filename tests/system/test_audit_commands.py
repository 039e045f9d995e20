"""`idstitch show`, `diagram` and `demo`, usage errors, and rich kept off the embedding path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import INITIAL, TRANSITIONS
from support.audit import clear, genesis, idstitch, json_lines, script, write_log
from support.helpers import bare_environment
from support.service import DeviceIds, open_stitch

pytestmark = pytest.mark.processes

PERSISTENT = {"IDSTITCH_RUNTIME": "persistent"}


def tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``folder`` with its bytes and mode (and the folder's own mode)."""
    files = {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode)
        for p in folder.rglob("*")
        if p.is_file()
    }
    return {**files, ".": (b"", folder.stat().st_mode)}


def _aliased_state(folder: Path) -> str:
    """A state dir where the library aliased user-a; returns the device id."""
    devices = DeviceIds()
    open_stitch(folder, sink=RecordingSink(), devices=devices).login("user-a")
    return devices.minted[0]


def test_show_reads_a_state_dir_without_changing_it(tmp_path: Path) -> None:
    """--json: the identity the host would start with, the runtime now; no file is touched."""
    state = tmp_path / "state"
    device = _aliased_state(state)
    before = tree(state)
    result = idstitch("show", "--state-dir", str(state), "--json", env=PERSISTENT)
    expected = {
        "type": "identity",
        "state": "aliased",
        "device_id": device,
        "user_id": "user-a",
        "distinct_id": "user-a",
        "linked_user": "user-a",
        "last_seq": 2,
        "state_dir": str(state),
        "runtime": "persistent",
        "runtime_signal": "IDSTITCH_RUNTIME",
        "telemetry": None,
        "sends": True,
        "log_bytes": len(before["identity.jsonl"][0]),
        "snapshot": "ok",
        "storage": "healthy",
        "healthy": True,
        "pending": 0,
        "kept": [],
        "spool": None,
        "notes": [],
    }
    assert (0, [expected], "", before) == (
        result.code,
        json_lines(result.stdout),
        result.stderr,
        tree(state),
    )


def test_show_finds_an_apps_default_state_dir_and_prints_it(tmp_path: Path) -> None:
    """--app NAME reads NAME's default dir (XDG on Linux); the text is a key/value block."""
    state = tmp_path / "xdg" / "mycli"
    device = _aliased_state(state)
    size = (state / "identity.jsonl").stat().st_size
    env = {**PERSISTENT, "XDG_STATE_HOME": str(tmp_path / "xdg")}
    expected = (
        f"{state}\n"
        "  state        aliased\n"
        f"  device id    {device}\n"
        "  user id      user-a\n"
        "  distinct id  user-a\n"
        "  linked to    user-a\n"
        "  last seq     2\n"
        "  runtime now  persistent (IDSTITCH_RUNTIME)\n"
        "  telemetry    on (no choice recorded: the default)\n"
        f"  log          identity.jsonl, {size} bytes\n"
        "  snapshot     ok\n"
        "  next run     healthy\n"
        "  health       healthy\n"
    )
    assert (0, expected, "") == idstitch("show", "--app", "mycli", env=env)


def test_show_runtime_is_the_one_detected_now(tmp_path: Path) -> None:
    """In CI the runtime shown is ephemeral, whatever the state dir holds."""
    state = tmp_path / "state"
    _aliased_state(state)
    result = idstitch("show", "--state-dir", str(state), "--json", env={"CI": "true"})
    assert (0, "ephemeral") == (result.code, json_lines(result.stdout)[0]["runtime"])


_HASH_MISMATCH = (
    "hash-chain: the hash does not match: this record or the one before it was edited, "
    "removed, inserted or moved"
)
_FRESH_HEAL = (
    "a repair would keep identity.jsonl aside as identity.jsonl.damaged-N (byte for byte); "
    "start a new log from a new device: records after the last trusted one cannot be checked "
    "(a new device, no user)"
)
_STAND_IN = (
    "the device id shown stands in for the new one the heal mints (it differs on every read)"
)


def _damaged_state(state: Path) -> int:
    """An aliased state dir whose alias record was edited, without its snapshot; returns the
    byte offset of the damaged record."""
    _aliased_state(state)
    log = state / "identity.jsonl"
    log.write_bytes(log.read_bytes().replace(b"user-a", b"user-z"))
    (state / "telemetry.json").unlink()
    return log.read_bytes().index(b"\n") + 1


def test_show_notes_a_damaged_log_and_shows_the_identity_a_heal_starts_from(
    tmp_path: Path,
) -> None:
    """A damaged log: notes say what is wrong and what the heal would do; nothing is written."""
    state = tmp_path / "state"
    offset = _damaged_state(state)
    before = tree(state)
    result = idstitch("show", "--state-dir", str(state), "--json", env=PERSISTENT)
    shown = json_lines(result.stdout)[0]
    notes = [
        f"identity.jsonl is damaged: record seq 2 at byte {offset}: {_HASH_MISMATCH}",
        _FRESH_HEAL,
        _STAND_IN,
        f"see `idstitch doctor {state}`",
    ]
    expected = (0, notes, "anonymous", None, 1, "healing", False, before)
    assert expected == (
        result.code,
        shown["notes"],
        shown["state"],
        shown["user_id"],
        shown["last_seq"],
        shown["storage"],
        shown["healthy"],
        tree(state),
    )


_ADOPTED_NOTE = (
    "telemetry.json is another tool's state file: the next persistent run adopts it "
    "(device d-legacy, user user-a) with one import record and keeps it as "
    "telemetry.json.pre-idstitch-N"
)
_OPTED_OUT_NOTE = (
    'telemetry.json is another tool\'s state file that says "enabled": false: the '
    "host's telemetry is off (R14), so nothing is adopted, sent or written"
)
_NOT_ADOPTED_NOTE = (
    "telemetry.json is another tool's state file without a device id PostHog would merge "
    "(R13): the next persistent run keeps it as telemetry.json.pre-idstitch-N and mints a "
    "new device"
)


@pytest.mark.parametrize(
    ("foreign", "expected", "note"),
    [
        (
            '{"device_id": "d-legacy", "distinct_id": "user-a", "enabled": true}',
            ("aliased", True, "user-a", 1, None, "foreign"),
            _ADOPTED_NOTE,
        ),
        (
            '{"device_id": "null", "distinct_id": "user-a"}',
            ("anonymous", False, None, 1, None, "foreign"),
            _NOT_ADOPTED_NOTE,
        ),
        (
            '{"device_id": "dev-1", "distinct_id": "dev-1", "enabled": false}',
            ("anonymous", True, None, 1, None, "foreign"),
            _OPTED_OUT_NOTE,
        ),
    ],
    ids=["adopted", "unusable-device-id", "disabled"],
)
def test_show_presents_a_foreign_state_file_as_the_host_would_take_it(
    tmp_path: Path, foreign: str, expected: tuple[object, ...], note: str
) -> None:
    """Another tool's telemetry.json: adopted (its device and user) or not (R13), and unchanged."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "telemetry.json").write_text(foreign)
    result = idstitch("show", "--state-dir", str(state), "--json", env=PERSISTENT)
    shown = json_lines(result.stdout)[0]
    actual = (
        shown["state"],
        shown["device_id"] == json.loads(foreign)["device_id"],
        *(shown[key] for key in ("user_id", "last_seq", "log_bytes", "snapshot")),
    )
    assert (0, expected, [note], foreign) == (
        result.code,
        actual,
        shown["notes"],
        (state / "telemetry.json").read_text(),
    )


def test_show_exits_2_when_there_is_no_state(tmp_path: Path) -> None:
    """No dir, an empty dir, no option, an untrusted dir, no identity yet: one line, exit 2."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    broken = tmp_path / "broken"
    broken.mkdir(mode=0o700)
    (broken / "telemetry.json").write_text("{not json")
    cases = [
        (["--state-dir", str(tmp_path / "none")], f"no state: {tmp_path / 'none'} does not exist"),
        (
            ["--state-dir", str(tmp_path)],
            f"no state: {tmp_path} holds neither identity.jsonl nor telemetry.json",
        ),
        ([], "a state dir is needed: DIR (--state-dir DIR) or --app NAME"),
        (
            ["--state-dir", str(shared)],
            f"{shared} is not used by idstitch: it is writable by others (mode 777)",
        ),
        (
            ["--state-dir", str(broken)],
            (
                f"no state: {broken} holds no identity yet (telemetry.json is corrupt, "
                "identity.jsonl is missing)"
            ),
        ),
    ]
    expected = [(2, "", f"idstitch: error: {message}\n") for _, message in cases]
    assert expected == [tuple(idstitch("show", *args)) for args, _ in cases]


_IN_MEMORY = (
    "the next persistent run keeps it aside, unread, and starts a new log (see idstitch doctor)"
)


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("symlink", "is a symlink (idstitch never follows one)"),
        ("directory", "is a directory"),
        ("fifo", "is not a regular file"),
    ],
)
def test_show_exits_2_for_a_log_idstitch_would_not_open(
    tmp_path: Path, kind: str, problem: str
) -> None:
    """A log the service refuses (it starts a made-up identity in memory): one line, exit 2."""
    state = tmp_path / "state"
    _aliased_state(state)
    log = state / "identity.jsonl"
    log.rename(state / "real.jsonl")
    if kind == "symlink":
        log.symlink_to("real.jsonl")
    elif kind == "directory":
        log.mkdir()
    else:
        os.mkfifo(log)
    message = f"idstitch: error: no state: {log} {problem}: {_IN_MEMORY}\n"
    assert [(2, "", message)] * 2 == [
        tuple(idstitch("show", "--state-dir", str(state), *flags)) for flags in ([], ["--json"])
    ]


def test_show_prints_a_path_that_is_not_utf8_as_its_bytes(tmp_path: Path) -> None:
    """A state dir named with a non-UTF-8 byte: shown as \\xe9 in JSON, text and notes; exit 0."""
    raw = os.fsencode(tmp_path) + b"/state\xe9"
    try:
        os.mkdir(raw, 0o700)
    except OSError:  # pragma: no cover - a file system that only takes UTF-8 names
        pytest.skip("this file system refuses names that are not UTF-8")
    state = Path(os.fsdecode(raw))
    _damaged_state(state)  # so that a note names the path
    shown = f"{tmp_path}/state\\xe9"
    note = f"see `idstitch doctor {shown}`"
    as_json = idstitch("show", "--state-dir", str(state), "--json", env=PERSISTENT)
    as_text = idstitch("show", "--state-dir", str(state), env=PERSISTENT)
    shown_json = json_lines(as_json.stdout)[0]
    text = as_text.stdout.splitlines()
    assert (0, shown, note, "", 0, shown, f"note: {note}", "") == (
        as_json.code,
        shown_json["state_dir"],
        shown_json["notes"][-1],
        as_json.stderr,
        as_text.code,
        text[0],
        text[-1],
        as_text.stderr,
    )


def _edges(mermaid: str) -> dict[tuple[str, str], list[str]]:
    """``(source, target) -> labels`` of a mermaid state diagram."""
    edges: dict[tuple[str, str], list[str]] = {}
    for line in mermaid.splitlines()[1:]:
        match = re.fullmatch(r"    (\S+) --> (\S+): (.*)", line)
        assert match is not None, line
        edges[(match[1], match[2])] = match[3].split("<br/>")
    return edges


def test_the_diagram_draws_every_transition_of_the_table() -> None:
    """Each row of TRANSITIONS appears on its edge, and nothing else does."""
    result = idstitch("diagram")
    expected: dict[tuple[str, str], list[str]] = {}
    for row in TRANSITIONS:
        source = "[*]" if row.source == INITIAL else str(row.source)
        label = row.event + (f" [{row.guard}]" if row.guard else "") + (" / alias" * row.alias)
        expected.setdefault((source, str(row.target)), []).append(label)
    assert (0, "stateDiagram-v2", expected, "") == (
        result.code,
        result.stdout.splitlines()[0],
        _edges(result.stdout),
        result.stderr,
    )


def test_the_diagram_as_json_is_the_table_row_by_row() -> None:
    """--json: one object per transition, in the table's order."""
    result = idstitch("diagram", "--json")
    expected: list[dict[str, Any]] = [
        {
            "type": "transition",
            "source": str(row.source),
            "event": row.event,
            "guard": row.guard,
            "target": str(row.target),
            "alias": row.alias,
            "why": row.why,
        }
        for row in TRANSITIONS
    ]
    assert (0, expected) == (result.code, json_lines(result.stdout))


@pytest.mark.slow
def test_the_demo_plays_every_scenario_against_a_local_server(tmp_path: Path) -> None:
    """demo --json: every scenario's checks hold; only the hand-written pre-fix log is flagged."""
    result = idstitch("demo", "--json", "--keep", str(tmp_path), timeout=120)
    objects = json_lines(result.stdout)
    scenarios = [o["scenario"] for o in objects if o["type"] == "scenario"]
    failed_checks = [o["check"] for o in objects if o["type"] == "check" and not o["ok"]]
    verified = {
        o["scenario"]: o["ids"]
        for o in objects
        if o["type"] == "summary" and "ids" in o and "scenario" in o
    }
    flagged = {
        o["scenario"]: o["flagged"]
        for o in objects
        if o["type"] == "summary" and "persons" in o and "scenario" in o
    }
    keys = [
        "first-login",
        "ci",
        "stale-identity",
        "logout-login",
        "failed-enqueue",
        "concurrent",
        "pre-fix",
    ]
    expected: tuple[object, ...] = (
        0,
        keys,
        [],
        {key: ["L2", "L4"] if key == "pre-fix" else [] for key in keys},
        {key: [1] if key == "pre-fix" else [] for key in keys},
        {"type": "summary", "scenarios": 7, "failed": []},
    )
    actual = (result.code, scenarios, failed_checks, verified, flagged, objects[-1])
    assert expected == actual


def test_usage_errors_are_one_line_and_exit_2() -> None:
    """An unknown command or a missing argument: one line on stderr, exit 2."""
    unknown = idstitch("frobnicate")
    missing = idstitch("replay")
    choices = (
        "'replay', 'verify', 'show', 'persons', 'doctor', 'diagram', 'demo', 'conform', 'fleet'"
    )
    expected = [
        (
            2,
            "",
            (
                f"idstitch: error: argument COMMAND: invalid choice: 'frobnicate' (choose from "
                f"{choices}) (see idstitch --help)\n"
            ),
        ),
        (
            2,
            "",
            (
                "idstitch: error: a log is needed: LOG (a file or a state dir), --state-dir DIR "
                "or --app NAME\n"
            ),
        ),
    ]
    assert expected == [tuple(unknown), tuple(missing)]


def _modules_after(script: str) -> list[str]:
    """The rich and idstitch.audit modules a fresh interpreter holds after running ``script``."""
    probe = (
        f"{script}\n"
        "import json, sys\n"
        "print('MODULES', json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'"
        " or m.startswith('idstitch.audit'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    marked = [line for line in done.stdout.splitlines() if line.startswith("MODULES ")]
    assert 1 == len(marked)
    modules: list[str] = json.loads(marked[0].removeprefix("MODULES "))
    return modules


def test_embedding_the_machine_never_imports_the_audit_tool_or_rich(tmp_path: Path) -> None:
    """import idstitch.machine, open a state dir, alias: neither rich nor idstitch.audit loads."""
    script = (
        "from idstitch.machine import IdentityStitch\n"
        f"s = IdentityStitch.open(state_dir={str(tmp_path)!r}, runtime='persistent', env={{}})\n"
        "s.observe_authenticated_response('user-a')\n"
    )
    assert [] == _modules_after(script)


def test_the_audit_tool_imports_rich_only_for_a_terminal() -> None:
    """Printing to a pipe never imports rich: the same text, without the terminal's colours."""
    modules = _modules_after("from idstitch.audit.cli import main\nmain(['diagram'])")
    assert [] == [m for m in modules if m.split(".")[0] == "rich"]


@pytest.mark.slow
def test_the_demo_prints_each_scenario_for_a_reader(tmp_path: Path) -> None:
    """`make demo`'s command: each scenario's sections in order, then the verdict; exit 0."""
    result = idstitch("demo", "--keep", str(tmp_path), timeout=120)
    titles = [line for line in result.stdout.splitlines() if line.startswith("== ")]
    sections = [
        line
        for line in result.stdout.splitlines()
        if line in ("what PostHog received", "verify", "persons", "checks")
    ]
    expected = (
        0,
        [
            "== 1. Persistent first login (R1, R2, R3)",
            "== 2. CI run (R1, R2)",
            "== 3. Stale identity (R3, R4)",
            "== 4. Logout, then login as another user (R3, R7)",
            "== 5. Failed enqueue, then retry (R9)",
            "== 6. Two concurrent processes (R5)",
            "== 7. For contrast: the bug the seed fixed (a hand-written log) (R3)",
        ],
        ["what PostHog received", "verify", "persons", "checks"] * 7,
        "demo ok: 7 scenarios, every check held.",
        "",
    )
    actual = (result.code, titles, sections, result.stdout.splitlines()[-1], result.stderr)
    assert expected == actual


def test_a_reader_that_goes_away_stops_the_output_quietly(tmp_path: Path) -> None:
    """`idstitch replay LOG | head -1` on an intact log: no error line, exit 141, not 1 (damage)."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), *[clear()] * 3000])  # far more rows than a pipe buffers
    with subprocess.Popen(
        [script(), "replay", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        code = process.wait(timeout=60)
        stderr = process.stderr.read()
    header = [b"seq", b"at", b"kind", b"state", b"device", b"distinct", b"id", b"alias"]
    assert (141, b"", header) == (code, stderr, first.split())


@pytest.mark.parametrize(
    "command",
    [
        ["replay", "LOG"],
        ["verify", "--json", "LOG"],
        ["persons", "LOG"],
        ["show", "--state-dir", "DIR"],
        ["diagram"],
        ["demo"],
    ],
    ids=lambda command: command[0],
)
def test_every_command_stops_quietly_when_its_reader_is_gone(
    tmp_path: Path, command: list[str]
) -> None:
    """stdout closed before the first line: each command exits 141 with nothing on stderr."""
    state = tmp_path / "state"
    _aliased_state(state)
    paths = {"LOG": str(state / "identity.jsonl"), "DIR": str(state)}
    with subprocess.Popen(
        [script(), *(paths.get(arg, arg) for arg in command)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()  # before the interpreter has even started
        code = process.wait(timeout=120)
        stderr = process.stderr.read()
    assert (141, b"") == (code, stderr)


def test_a_replay_does_not_look_up_the_installed_version(tmp_path: Path) -> None:
    """importlib.metadata (about 20 ms of the tool's start) is loaded for --version only."""
    from support.audit import genesis, write_log

    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis()])
    script = (
        "import sys\n"
        "from idstitch.audit.cli import main\n"
        "code = main(['replay', sys.argv[1]])\n"
        "print(code, 'importlib.metadata' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(log)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=bare_environment(),
    )
    assert "0 False" == done.stderr.strip()
