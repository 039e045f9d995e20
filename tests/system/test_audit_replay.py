"""`idstitch replay`: the timeline of logs the library wrote, and of every kind of damage."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.sinks import RecordingSink
from support.audit import (
    D1,
    D2,
    Spec,
    alias,
    all_hold,
    clear,
    damage_of,
    dropped,
    enqueue_failure,
    genesis,
    healed,
    idstitch,
    json_lines,
    logout,
    on_terminal,
    script,
    stamp,
    write_lines,
    write_log,
)
from support.service import DeviceIds, open_stitch

pytestmark = pytest.mark.processes

GOLDEN = """\
   seq  at                           kind             state                  device                                distinct id                           alias
     1  2026-11-27T17:00:00.000000Z  genesis          initial → anonymous    11111111-1111-4111-8111-111111111111  11111111-1111-4111-8111-111111111111
     2  2026-11-27T17:00:01.000000Z  response         anonymous → aliased    11111111-1111-4111-8111-111111111111  user-a                                sent
     3  2026-11-27T17:00:02.000000Z  logout           aliased → reset        11111111-1111-4111-8111-111111111111  22222222-2222-4222-8222-222222222222
     4  2026-11-27T17:00:03.000000Z  login            reset → aliased        22222222-2222-4222-8222-222222222222  user-a                                sent
final identity
  state        aliased
  device id    22222222-2222-4222-8222-222222222222
  user id      user-a
  distinct id  user-a
  linked to    user-a
  last seq     4
  records      4
  aliased      2 devices
"""  # noqa: E501 - the timeline is wide by design


def row(
    seq: int,
    kind: str,
    states: tuple[str, str],
    ids: tuple[str, str],
    *,
    offset: int,
    at: str,
    user: str | None = None,
    alias_mark: str | None = None,
    kept: str | None = None,
    reason: str | None = None,
    telemetry: str | None = None,
) -> dict[str, Any]:
    """One expected ``replay --json`` row; ``states`` are before/after, ``ids`` device/distinct."""
    (before, after), (device, distinct) = states, ids
    return {
        "type": "record",
        "seq": seq,
        "at": at,
        "kind": kind,
        "offset": offset,
        "before": before,
        "after": after,
        "device_id": device,
        "user_id": user,
        "distinct_id": distinct,
        "alias": alias_mark,
        "kept": kept,
        "reason": reason,
        "telemetry": telemetry,
    }


def test_replay_prints_the_timeline_and_the_final_identity(tmp_path: Path) -> None:
    """A clean log: one aligned row per record, then the final identity; exit 0."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), logout(D1, D2), alias("user-a", D2, kind="login")])
    assert (0, GOLDEN, "") == idstitch("replay", str(log))


HEALED = f"""\
   seq  at                           kind             state                  device                                distinct id                           alias
     1  2026-11-27T17:00:00.000000Z  heal             initial → anonymous    {D1}  {D1}  carried  kept identity.jsonl.damaged-1
     2  2026-11-27T17:00:01.000000Z  response         anonymous → aliased    {D1}  user-a
     3  2026-11-27T17:00:02.000000Z  login            aliased → stamped      {D1}  user-b
final identity
  state        stamped
  device id    {D1}
  user id      user-b
  distinct id  user-b
  linked to    user-a
  last seq     3
  records      3
  aliased      1 device
"""  # noqa: E501 - the timeline is wide by design

#: A log opened by a heal that carried an alias to user-a; user-a comes back, then user-b.
HEALED_LOG = [healed(D1, None, "user-a"), stamp("user-a"), stamp("user-b", kind="login")]


def test_replay_shows_a_heal_row_with_the_file_it_kept(tmp_path: Path) -> None:
    """A heal row: the state it starts in, its device, the distinct id, carried, the kept file."""
    log = tmp_path / "identity.jsonl"
    write_log(log, HEALED_LOG)
    assert (0, HEALED, "") == idstitch("replay", str(log))


def test_replay_json_shows_a_heal_row_with_the_file_it_kept(tmp_path: Path) -> None:
    """--json: the heal row names the kept file (null on other rows); its carried alias stands."""
    log = tmp_path / "identity.jsonl"
    data = write_log(log, HEALED_LOG)
    offsets = [0, data.index(b"\n") + 1, data.index(b"\n", data.index(b"\n") + 1) + 1]
    at = [f"2026-11-27T17:00:0{n}.000000Z" for n in range(3)]
    expected = [
        row(1, "heal", ("initial", "anonymous"), (D1, D1), offset=0, at=at[0],
            alias_mark="carried", kept="identity.jsonl.damaged-1"),
        row(2, "response", ("anonymous", "aliased"), (D1, "user-a"), offset=offsets[1], at=at[1],
            user="user-a"),
        row(3, "login", ("aliased", "stamped"), (D1, "user-b"), offset=offsets[2], at=at[2],
            user="user-b"),
        {
            "type": "identity",
            "state": "stamped",
            "device_id": D1,
            "user_id": "user-b",
            "distinct_id": "user-b",
            "linked_user": "user-a",
            "last_seq": 3,
            "records": 3,
            "aliases": {D1: "user-a"},
            "complete": True,
        },
    ]  # fmt: skip
    result = idstitch("replay", "--json", str(log))
    assert (0, expected, "") == (result.code, json_lines(result.stdout), result.stderr)


DROPPED = f"""\
   seq  at                           kind             state                  device                                distinct id                           alias
     1  2026-11-27T17:00:00.000000Z  genesis          initial → anonymous    {D1}  {D1}
     2  2026-11-27T17:00:01.000000Z  response         anonymous → aliased    {D1}  user-a                                sent
     3  2026-11-27T17:00:02.000000Z  logout           aliased → reset        {D1}  {D2}
     4  2026-11-27T17:00:03.000000Z  login            reset → aliased        {D2}  user-b                                sent
     5  2026-11-27T17:00:04.000000Z  alias_dropped    aliased → aliased      {D1}  user-b                                dropped  (expired)
     6  2026-11-27T17:00:05.000000Z  alias_dropped    aliased → stamped      {D2}  user-b                                dropped  (refused: HTTP 400)
     7  2026-11-27T17:00:06.000000Z  response         stamped → aliased      {D2}  user-b                                sent
final identity
  state        aliased
  device id    {D2}
  user id      user-b
  distinct id  user-b
  linked to    user-b
  last seq     7
  records      7
  aliased      1 device
"""  # noqa: E501 - the timeline is wide by design

#: Both aliases dropped by the sender (the first device's after a logout), then the device in
#: force aliased again.
DROPPED_LOG = [
    genesis(),
    alias("user-a"),
    logout(D1, D2),
    alias("user-b", D2, kind="login"),
    dropped("user-a", D1),
    dropped("user-b", D2, reason="refused: HTTP 400"),
    alias("user-b", D2),
]


def test_replay_shows_drops_with_their_reason(tmp_path: Path) -> None:
    """A drop row: dropped, the reason, the alias's device (an earlier one: no state moves; the
    one in force: aliased to stamped); the final count of aliased devices leaves both out but the
    new alias."""
    log = tmp_path / "identity.jsonl"
    write_log(log, DROPPED_LOG)
    assert (0, DROPPED, "") == idstitch("replay", str(log))


def test_replay_json_gives_a_drops_reason_and_the_aliases_that_stand(tmp_path: Path) -> None:
    """--json: drop rows carry "dropped" and the reason (null on other rows); the identity's
    aliases are the ones that stand after the drops."""
    log = tmp_path / "identity.jsonl"
    data = write_log(log, DROPPED_LOG)
    offsets = [0]
    for line in data.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    at = [f"2026-11-27T17:00:0{n}.000000Z" for n in range(7)]
    rows = json_lines(idstitch("replay", "--json", str(log)).stdout)
    expected = [
        row(5, "alias_dropped", ("aliased", "aliased"), (D1, "user-b"), offset=offsets[4],
            at=at[4], user="user-a", alias_mark="dropped", reason="expired"),
        row(6, "alias_dropped", ("aliased", "stamped"), (D2, "user-b"), offset=offsets[5],
            at=at[5], user="user-b", alias_mark="dropped", reason="refused: HTTP 400"),
        row(7, "response", ("stamped", "aliased"), (D2, "user-b"), offset=offsets[6], at=at[6],
            user="user-b", alias_mark="sent"),
    ]  # fmt: skip
    identity = rows[-1]
    assert (expected, {D2: "user-b"}, None) == (rows[4:7], identity["aliases"], rows[1]["reason"])


def test_replay_json_follows_a_log_the_library_wrote(tmp_path: Path) -> None:
    """--json on a real service's log: every row, then the identity, exactly as replayed."""
    devices = DeviceIds()
    stitch = open_stitch(tmp_path, sink=RecordingSink(fail_aliases=1), devices=devices)
    stitch.observe_authenticated_response("user-a")  # refused by the sink: enqueue_failure
    stitch.login("user-a")
    stitch.logout()
    stitch.observe_authenticated_response("user-b")
    first, second = devices.minted
    data = (tmp_path / "identity.jsonl").read_bytes()
    offsets = [0]
    for line in data.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    at = [f"2026-11-27T17:00:00.{ms:03d}000Z" for ms in range(6)]
    expected = [
        row(1, "genesis", ("initial", "anonymous"), (first, first), offset=offsets[0], at=at[0]),
        row(2, "response", ("anonymous", "aliased"), (first, "user-a"), offset=offsets[1], at=at[1],
            user="user-a", alias_mark="sent"),
        row(3, "enqueue_failure", ("aliased", "anonymous"), (first, first), offset=offsets[2],
            at=at[2], user="user-a", alias_mark="undone"),
        row(4, "login", ("anonymous", "aliased"), (first, "user-a"), offset=offsets[3], at=at[3],
            user="user-a", alias_mark="sent"),
        row(5, "logout", ("aliased", "reset"), (first, second), offset=offsets[4], at=at[4]),
        row(6, "response", ("reset", "aliased"), (second, "user-b"), offset=offsets[5], at=at[5],
            user="user-b", alias_mark="sent"),
        {
            "type": "identity",
            "state": "aliased",
            "device_id": second,
            "user_id": "user-b",
            "distinct_id": "user-b",
            "linked_user": "user-b",
            "last_seq": 6,
            "records": 6,
            "aliases": {first: "user-a", second: "user-b"},
            "complete": True,
        },
    ]  # fmt: skip
    result = idstitch("replay", "--json", str(tmp_path))
    assert (0, expected, "") == (result.code, json_lines(result.stdout), result.stderr)


def _torn(log: Path) -> bytes:
    data = write_log(log, [genesis(), alias("user-a"), clear()])
    return data[:-20]


def _hash_chain(log: Path) -> bytes:
    data = write_log(log, [genesis(), alias("user-a"), clear()])
    return data.replace(b'"user-a"', b'"user-z"')


def _unknown_kind(log: Path) -> bytes:
    extra = {"v": 1, "seq": 3, "at": "2026-11-27T17:00:02.000000Z", "kind": "identify",
             "device_id": D1, "user_id": "user-a"}  # fmt: skip
    return write_lines(log, [genesis(), alias("user-a")], extra)


def _bad_field(log: Path) -> bytes:
    extra = {"v": 1, "seq": 3, "at": "2026-11-27T17:00:02.000000Z", "kind": "clear",
             "device_id": D1, "pid": "7"}  # fmt: skip
    return write_lines(log, [genesis(), alias("user-a")], extra)


def _newer_version(log: Path) -> bytes:
    extra = {"v": 5, "seq": 3, "at": "2026-11-27T17:00:02.000000Z", "kind": "clear",
             "device_id": D1, "pid": 7, "reason": "token expired"}  # fmt: skip
    return write_lines(log, [genesis(), alias("user-a")], extra)


def _seq_gap(log: Path) -> bytes:
    return write_log(log, [genesis(), alias("user-a"), clear()], skip_seq_after=2)


def _bad_json(log: Path) -> bytes:
    data = write_log(log, [genesis(), alias("user-a")])
    return data + b"not json at all\n"


DAMAGE = {
    "torn-tail": _torn,
    "hash-chain": _hash_chain,
    "unknown-kind": _unknown_kind,
    "bad-field": _bad_field,
    "newer-version": _newer_version,
    "seq-gap": _seq_gap,
    "bad-json": _bad_json,
}


@pytest.mark.parametrize("cause", sorted(DAMAGE))
def test_replay_stops_at_each_kind_of_damage(tmp_path: Path, cause: str) -> None:
    """Rows up to the damage, then the damage as the codec names it (seq, offset, cause); exit 1."""
    log = tmp_path / "identity.jsonl"
    data = DAMAGE[cause](log)
    log.write_bytes(data)
    good, error = damage_of(data)
    assert error is not None
    result = idstitch("replay", "--json", str(log))
    objects = json_lines(result.stdout)
    damage = {
        "type": "damage",
        "seq": error.seq,
        "offset": error.offset,
        "cause": cause,
        "detail": error.detail,
    }
    expected = (1, [r["seq"] for r in good], damage, False, "")
    actual = (
        result.code,
        [o["seq"] for o in objects if o["type"] == "record"],
        objects[-2],
        objects[-1]["complete"],
        result.stderr,
    )
    assert expected == actual


@pytest.mark.parametrize("command", ["replay", "verify", "persons"])
def test_strict_reads_stop_where_the_models_refuse_a_record(tmp_path: Path, command: str) -> None:
    """A record only the models refuse (an unknown runtime) is read plainly, but stops --strict."""
    log = tmp_path / "identity.jsonl"
    data = write_lines(
        log,
        [genesis(), stamp("user-a")],
        {
            "v": 1,
            "seq": 3,
            "at": "2026-11-27T17:00:02.000000Z",
            "kind": "response",
            "device_id": D1,
            "user_id": "user-b",
            "runtime": "cloud",
            "pid": 7,
            "alias": False,
        },
    )
    assert damage_of(data)[1] is None
    plain = idstitch(command, "--json", str(log))
    strict = idstitch(command, "--strict", "--json", str(log))
    # replay and persons print the damage as an object; verify names it in its summary.
    objects = json_lines(strict.stdout)
    damage = [o for o in objects if o.get("type") == "damage"] or [objects[-1]["stopped_at"]]
    assert (0, 1) == (plain.code, strict.code)
    assert [(3, "bad-field")] == [(o["seq"], o["cause"]) for o in damage]
    assert "runtime" in damage[0]["detail"]


def test_replay_names_the_damage_in_one_clear_line(tmp_path: Path) -> None:
    """Text output: the rows, one line with seq, byte offset and cause, the identity before it."""
    log = tmp_path / "identity.jsonl"
    log.write_bytes(_hash_chain(log))
    result = idstitch("replay", str(log))
    lines = result.stdout.splitlines()
    expected = (
        1,
        2,
        (
            "damaged: seq 2 at byte 181: broken hash chain: the hash does not match: this "
            "record or the one before it was edited, removed, inserted or moved. The 1 record "
            "before it is intact; nothing was rewritten."
        ),
        "identity before it",
    )
    assert expected == (result.code, len(lines) - 10, lines[2], lines[3])


@pytest.mark.parametrize(
    ("refused", "detail"),
    [
        (enqueue_failure("user-a"), "enqueue_failure is not a transition from state stamped"),
        (dropped("user-a"), "alias_dropped is not a transition from state stamped"),
    ],
    ids=["enqueue_failure", "alias_dropped"],
)
def test_replay_stops_at_a_transition_the_table_refuses(
    tmp_path: Path, refused: Spec, detail: str
) -> None:
    """An enqueue_failure with no alias before it, or a drop of an alias the device in force
    does not have, cannot be replayed: exit 1, named as such."""
    log = tmp_path / "identity.jsonl"
    data = write_log(log, [genesis(), stamp("user-a"), refused])
    offset = len(data.splitlines(keepends=True)[0]) + len(data.splitlines(keepends=True)[1])
    result = idstitch("replay", "--json", str(log))
    objects = json_lines(result.stdout)
    damage = {
        "type": "damage",
        "seq": 3,
        "offset": offset,
        "cause": "transition",
        "detail": f"record seq 3: {detail}",
    }
    assert (1, [1, 2], damage) == (
        result.code,
        [o["seq"] for o in objects if o["type"] == "record"],
        objects[2],
    )


def test_an_empty_log_replays_to_no_identity(tmp_path: Path) -> None:
    """A zero-byte log is an empty log: no rows, an identity of nulls, exit 0."""
    log = tmp_path / "identity.jsonl"
    log.write_bytes(b"")
    expected: dict[str, Any] = {
        "type": "identity",
        "state": None,
        "device_id": None,
        "user_id": None,
        "distinct_id": None,
        "linked_user": None,
        "last_seq": 0,
        "records": 0,
        "aliases": {},
        "complete": True,
    }
    result = idstitch("replay", "--json", str(log))
    assert (0, [expected], "") == (result.code, json_lines(result.stdout), result.stderr)


def _unusable(tmp_path: Path, case: str) -> tuple[str, str]:
    """An input that is no log at all, and the message it must get."""
    if case == "missing":
        path = tmp_path / "nowhere.jsonl"
        return str(path), f"{path}: no such file"
    if case == "empty-dir":
        return str(tmp_path), f"{tmp_path} is a directory with no identity.jsonl in it"
    if case == "text":
        path = tmp_path / "notes.txt"
        path.write_text("hello\n")
        return str(path), (
            f'{path} is not an idstitch identity log (its first line does not start with {{"v":)'
        )
    if case == "gzip":
        path = tmp_path / "identity.jsonl.gz"
        path.write_bytes(b"\x1f\x8b\x08\x00rest")
        return str(path), f"{path} is gzip-compressed: gunzip it first"
    if case == "log-is-a-dir":
        (tmp_path / "identity.jsonl").mkdir()
        return str(tmp_path), f"{tmp_path / 'identity.jsonl'} is a directory, not a log"
    if case == "fifo":
        path = tmp_path / "identity.jsonl"
        os.mkfifo(path)
        return str(path), f"{path} is not a regular file"
    path = tmp_path / "a-file"
    path.write_text("")
    return str(path / "x.jsonl"), f"{path / 'x.jsonl'}: cannot open: Not a directory"


@pytest.mark.parametrize(
    "case", ["missing", "empty-dir", "text", "gzip", "log-is-a-dir", "fifo", "under-a-file"]
)
@pytest.mark.parametrize("command", ["replay", "verify", "persons"])
def test_unusable_input_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, case: str, command: str
) -> None:
    """Missing files, directories without a log and non-logs: one error line, exit 2."""
    argument, message = _unusable(tmp_path, case)
    assert (2, "", f"idstitch: error: {message}\n") == idstitch(command, argument)


def _long_log(path: Path, count: int) -> None:
    """A valid log of ``count`` records: one alias, then clear / linked response pairs."""
    specs: list[Spec] = [genesis(), alias("user-a")]
    cycle = [clear(), stamp("user-a")]
    specs += [cycle[i % 2] for i in range(count - 2)]
    write_log(path, specs)


def test_a_long_replay_draws_a_progress_bar_on_a_terminal_stderr(tmp_path: Path) -> None:
    """stderr a terminal and the read slower than the delay: a bar there, stdout untouched."""
    log = tmp_path / "identity.jsonl"
    _long_log(log, 3000)
    code, terminal, stdout = on_terminal(
        ["verify", str(log)], "stderr", {"IDSTITCH_PROGRESS_DELAY": "0"}
    )
    assert (0, all_hold(3000).encode(), True) == (
        code,
        stdout,
        b"reading the log" in terminal,
    )


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """A pipe on stderr never gets a bar, however long the read takes."""
    log = tmp_path / "identity.jsonl"
    _long_log(log, 3000)
    result = idstitch("replay", "--json", str(log), env={"IDSTITCH_PROGRESS_DELAY": "0"})
    assert (0, 3001, "") == (result.code, len(result.stdout.splitlines()), result.stderr)


def _peak_kib(log: Path) -> int:
    """The peak resident memory of one `idstitch replay` over ``log``, in KiB."""
    measure = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", measure, script(), "replay", str(log)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(done.stdout)


def test_replay_memory_stays_flat_as_the_log_grows(tmp_path: Path) -> None:
    """Replaying 40,000 records peaks within 4 MiB of replaying 1,000: nothing accumulates."""
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    _long_log(small, 1000)
    _long_log(large, 40_000)
    growth = _peak_kib(large) - _peak_kib(small)
    assert (True, large.stat().st_size > 7_000_000) == (growth < 4096, True)


def test_on_a_terminal_the_timeline_is_the_same_text_in_colour(tmp_path: Path) -> None:
    """stdout a terminal: rich colours the states, and without its escapes the text is unchanged."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias("user-a"), logout(D1, D2), alias("user-a", D2, kind="login")])
    code, terminal, stderr = on_terminal(["replay", str(log)], "stdout", {})
    text = terminal.decode().replace("\r\n", "\n")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert (0, True, GOLDEN, b"") == (code, "\x1b[32maliased\x1b[0m" in text, plain, stderr)


@pytest.mark.parametrize("name", ["heal", "drops"])
def test_on_a_terminal_heal_and_drop_rows_are_the_same_text_in_colour(
    tmp_path: Path, name: str
) -> None:
    """stdout a terminal: a heal row's and a drop row's marks and notes are styled; without
    escapes the text is the same."""
    specs, golden = {"heal": (HEALED_LOG, HEALED), "drops": (DROPPED_LOG, DROPPED)}[name]
    log = tmp_path / "identity.jsonl"
    write_log(log, specs)
    code, terminal, stderr = on_terminal(["replay", str(log)], "stdout", {})
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.decode().replace("\r\n", "\n"))
    assert (0, golden, b"") == (code, plain, stderr)
