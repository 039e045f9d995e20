"""`idstitch doctor`: the real console script on real state dirs, healthy, damaged and pending."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from support.audit import idstitch, in_process, json_lines
from support.helpers import forge_line
from support.service import DeviceIds, log_records, open_stitch
from support.workers import holding_the_lock

_HASH_MISMATCH = (
    "hash-chain: the hash does not match: this record or the one before it was edited, "
    "removed, inserted or moved"
)


def tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder`` with its bytes and mode (and the folder's own mode)."""
    files = {p.name: (p.read_bytes(), p.stat().st_mode) for p in folder.iterdir()}
    return {**files, ".": (b"", folder.stat().st_mode)}


def _logged_in(state: Path) -> list[str]:
    """A state dir where user-a logged in, logged out and user-b logged in; its devices."""
    devices = DeviceIds()
    stitch = open_stitch(state, devices=devices)
    stitch.login("user-a")
    stitch.logout()
    stitch.login("user-b")
    return devices.minted


def _flip(state: Path, seq: int) -> int:
    """Flip one byte inside record ``seq`` (its time field); return the record's offset."""
    log = state / "identity.jsonl"
    data = bytearray(log.read_bytes())
    offset = sum(len(line) for line in data.splitlines(keepends=True)[: seq - 1])
    data[offset + data[offset:].index(b'"at":"') + 8] ^= 0x01
    log.write_bytes(bytes(data))
    return offset


def _doctor(state: Path, *flags: str) -> tuple[int, dict[str, Any], str]:
    result = in_process("doctor", str(state), "--json", *flags)
    [found] = json_lines(result.stdout)
    return result.code, found, result.stderr


@pytest.mark.processes
def test_a_healthy_dir_exits_0_and_says_so(tmp_path: Path) -> None:
    """A dir the service wrote: healthy, nothing to repair, its identity; nothing changes."""
    devices = _logged_in(tmp_path)
    before = tree(tmp_path)
    result = idstitch("doctor", str(tmp_path))
    expected = (
        f"{tmp_path}: healthy\n"
        f"  identity   aliased, user-b, device {devices[1]}, seq 4\n"
        "  next run   healthy (a usable state dir)\n"
    )
    assert (0, expected, "", before) == (*result, tree(tmp_path))


def test_the_json_object_carries_every_fact(tmp_path: Path) -> None:
    """--json: one diagnosis object with each field the text shows."""
    devices = _logged_in(tmp_path)
    code, found, stderr = _doctor(tmp_path)
    expected = {
        "type": "diagnosis",
        "state_dir": str(tmp_path),
        "healthy": True,
        "repaired": False,
        "storage": "healthy",
        "storage_reason": "a usable state dir",
        "problems": [],
        "repair": [],
        "notes": [],
        "kept": [],
        "pending": [],
        "heal": None,
        "identity": {
            "state": "aliased",
            "device_id": devices[1],
            "user_id": "user-b",
            "distinct_id": "user-b",
            "linked_user": "user-b",
            "last_seq": 4,
        },
        "log_bytes": (tmp_path / "identity.jsonl").stat().st_size,
        "snapshot": "ok",
        "spool": None,
    }
    assert (0, expected, "") == (code, found, stderr)


@pytest.mark.parametrize("snapshot", [True, False], ids=["with-snapshot", "without-snapshot"])
def test_a_flipped_byte_needs_repair_and_the_dir_is_left_alone(
    tmp_path: Path, snapshot: bool
) -> None:
    """A byte flipped in record 2: exit 1, the problem and the planned heal; nothing written."""
    devices = _logged_in(tmp_path)
    offset = _flip(tmp_path, 2)
    if not snapshot:
        (tmp_path / "telemetry.json").unlink()
    before = tree(tmp_path)
    code, found, stderr = _doctor(tmp_path)
    heal: dict[str, str | None]
    if snapshot:
        steps = (
            "keep identity.jsonl aside as identity.jsonl.damaged-N (byte for byte); keep "
            "telemetry.json aside as telemetry.json.damaged-N; start a new log from the "
            f"snapshot, whose record the log holds (device {devices[1]}, user user-b, "
            "aliased to user-b)"
        )
        heal = {
            "source": "the snapshot, whose record the log holds",
            "device_id": devices[1],
            "user_id": "user-b",
            "linked_user": "user-b",
        }
    else:
        steps = (
            "keep identity.jsonl aside as identity.jsonl.damaged-N (byte for byte); start a new "
            "log from a new device: records after the last trusted one cannot be checked "
            "(a new device, no user)"
        )
        heal = {
            "source": "a new device: records after the last trusted one cannot be checked",
            "device_id": None,
            "user_id": None,
            "linked_user": None,
        }
    expected = (
        1,
        [f"identity.jsonl is damaged: record seq 2 at byte {offset}: {_HASH_MISMATCH}"],
        [steps],
        heal,
        "healing",
        False,
        "",
        before,
    )
    actual = (
        code,
        found["problems"],
        found["repair"],
        found["heal"],
        found["storage"],
        found["healthy"],
        stderr,
        tree(tmp_path),
    )
    assert expected == actual


def test_repair_keeps_the_damaged_log_and_starts_a_new_one_with_a_heal(tmp_path: Path) -> None:
    """--repair: exit 0; the log kept byte for byte; the new log opens with a heal; then healthy."""
    devices = _logged_in(tmp_path)
    _flip(tmp_path, 2)
    damaged = (tmp_path / "identity.jsonl").read_bytes()
    repaired = in_process("doctor", str(tmp_path), "--repair")
    kept = tmp_path / "identity.jsonl.damaged-1"
    again = in_process("doctor", str(tmp_path), "--json")
    expected = (
        0,
        f"{tmp_path}: repaired",
        damaged,
        0o600,
        [("heal", devices[1], "user-b", "identity.jsonl.damaged-1")],
        0,
        (True, False, ["identity.jsonl.damaged-1", "telemetry.json.damaged-1"]),
    )
    found = json_lines(again.stdout)[0]
    actual = (
        repaired.code,
        repaired.stdout.splitlines()[0],
        kept.read_bytes(),
        kept.stat().st_mode & 0o777,
        [(r["kind"], r["device_id"], r["user_id"], r["kept"]) for r in log_records(tmp_path)],
        again.code,
        (found["healthy"], found["repaired"], found["kept"]),
    )
    assert expected == actual


def test_repair_says_what_was_wrong_what_it_did_and_how_to_read_the_kept_log(
    tmp_path: Path,
) -> None:
    """The text of a repair: what was wrong, what was done, each kept file and how to read it."""
    devices = _logged_in(tmp_path)
    offset = _flip(tmp_path, 2)
    result = in_process("doctor", str(tmp_path), "--repair")
    heal = log_records(tmp_path)[0]
    kept = tmp_path / "identity.jsonl.damaged-1"
    expected = (
        f"{tmp_path}: repaired\n"
        f"  was wrong  identity.jsonl is damaged: record seq 2 at byte {offset}: "
        f"{_HASH_MISMATCH}\n"
        "  repaired   keep identity.jsonl aside as identity.jsonl.damaged-N (byte for byte); "
        "keep telemetry.json aside as telemetry.json.damaged-N; start a new log from the "
        f"snapshot, whose record the log holds (device {devices[1]}, user user-b, "
        "aliased to user-b)\n"
        "  kept       identity.jsonl.damaged-1: a log as it was: read it with "
        f"`idstitch replay {kept}`\n"
        "  kept       telemetry.json.damaged-1: a snapshot (JSON) as it was\n"
        f"  identity   aliased, user-b, device {devices[1]}, seq 1\n"
        "  next run   healthy (a usable state dir)\n"
    )
    assert (0, expected, "", "heal") == (*result, heal["kind"])


@pytest.mark.processes
def test_a_pending_forgetting_needs_repair_and_repair_appends_it(tmp_path: Path) -> None:
    """A logout made while another process held the lock: exit 1; --repair appends it: exit 0."""
    _logged_in(tmp_path)
    with holding_the_lock(tmp_path):
        stitch = open_stitch(tmp_path, devices=DeviceIds("during"))
        stitch.logout()
    pending = [p.name for p in tmp_path.iterdir() if p.name.startswith("identity.pending-")]
    before = tree(tmp_path)
    code, found, _ = _doctor(tmp_path)
    unchanged = tree(tmp_path) == before
    fixed, after, _ = _doctor(tmp_path, "--repair")
    last = log_records(tmp_path)[-1]
    expected: tuple[object, ...] = (
        (1, ["1 pending forgetting(s) not yet in the log"], True),
        [{"file": pending[0], "kind": "logout", "new_device_id": stitch.device_id}],
        ["append the pending forgettings to the log and remove their files"],
        (0, True, True, []),
        ("logout", stitch.device_id),
        [],
    )
    actual = (
        (code, found["problems"], unchanged),
        found["pending"],
        found["repair"],
        (fixed, after["healthy"], after["repaired"], after["pending"]),
        (last["kind"], last["new_device_id"]),
        [p.name for p in tmp_path.iterdir() if p.name.startswith("identity.pending-")],
    )
    assert expected == actual


def test_a_newer_format_log_needs_a_newer_build_and_repair_leaves_every_byte(
    tmp_path: Path,
) -> None:
    """L8: a v 4 record: exit 1 with nothing this build may repair; --repair writes nothing."""
    _logged_in(tmp_path)
    log = tmp_path / "identity.jsonl"
    last = log_records(tmp_path)[-1]
    newer = {"v": 5, "seq": last["seq"] + 1, "at": last["at"], "kind": "vote"}
    log.write_bytes(log.read_bytes() + forge_line(newer, last["h"]))
    before = tree(tmp_path)
    code, found, _ = _doctor(tmp_path)
    repaired, after, _ = _doctor(tmp_path, "--repair")
    expected = (
        (1, "read_only", False),
        ["none: only a newer idstitch may write this dir (this build never will)"],
        (1, False),
        before,
    )
    actual = (
        (code, found["storage"], found["healthy"]),
        found["repair"],
        (repaired, after["repaired"]),
        tree(tmp_path),
    )
    assert expected == actual
    assert found["problems"][0].startswith("identity.jsonl holds records of a newer idstitch (")


@pytest.mark.processes
def test_a_dir_it_cannot_open_exits_2_with_one_line(tmp_path: Path) -> None:
    """A missing dir, a file in its place: one line on stderr, exit 2."""
    file = tmp_path / "file"
    file.write_text("not a dir")
    cases = [
        (tmp_path / "none", f"{tmp_path / 'none'} does not exist"),
        (file, f"{file} is not a directory"),
    ]
    expected = [(2, "", f"idstitch: error: {message}\n") for _, message in cases]
    assert expected == [tuple(idstitch("doctor", str(path))) for path, _ in cases]


def test_another_tools_state_file_is_healthy_and_noted(tmp_path: Path) -> None:
    """A foreign telemetry.json and no log: nothing to repair; a note says it will be adopted."""
    tmp_path.chmod(0o700)
    (tmp_path / "telemetry.json").write_text(json.dumps({"device_id": "d-legacy"}))
    code, found, _ = _doctor(tmp_path)
    note = (
        "telemetry.json is another tool's state file: the next persistent run adopts it "
        "(device d-legacy, user none) with one import record and keeps it as "
        "telemetry.json.pre-idstitch-N"
    )
    assert (0, True, [note], "foreign") == (
        code,
        found["healthy"],
        found["notes"],
        found["snapshot"],
    )


@pytest.mark.parametrize("planted", ["symlink", "fifo", "dir"])
def test_a_log_that_is_no_file_needs_repair_and_repair_heals_it(
    tmp_path: Path, planted: str
) -> None:
    """A link, FIFO or directory in place of the log: exit 1 (the service heals it, unread);
    --repair keeps it aside and starts a new log: exit 0, and the link's target untouched."""
    state = tmp_path / "state"
    _logged_in(state)
    log = state / "identity.jsonl"
    (state / "identity.jsonl").rename(tmp_path / "real.jsonl")
    target = (tmp_path / "real.jsonl").read_bytes()
    if planted == "symlink":
        log.symlink_to(tmp_path / "real.jsonl")
    elif planted == "fifo":
        os.mkfifo(log)
    else:
        log.mkdir()
    before = in_process("doctor", str(state), "--json")
    repaired = in_process("doctor", str(state), "--repair", "--json")
    found = json_lines(before.stdout)[0]
    assert (1, False, 0, True) == (
        before.code,
        found["healthy"],
        repaired.code,
        json_lines(repaired.stdout)[0]["healthy"],
    )
    assert (True, "heal", target) == (
        os.path.lexists(state / "identity.jsonl.damaged-1"),
        log_records(state)[0]["kind"],
        (tmp_path / "real.jsonl").read_bytes(),
    )
