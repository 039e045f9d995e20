"""Any damage to a used state dir heals: three later runs of login and logout never raise,
never alias a device twice, never lose a logout, are healthy and silent from the second run
on, and the damaged bytes are kept.

The damage: every truncation of the last record, and drawn truncations, byte flips and
inserted bytes anywhere; the snapshot kept, removed, older or claiming a later record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import replay
from idstitch.service import Storage
from idstitch.store import FileLog
from support.reliability import count
from support.service import DeviceIds, open_stitch
from support.strategies import examples

SNAPSHOTS = ("kept", "removed", "older", "newer")


@dataclass(frozen=True)
class UsedDir:
    """A state dir's files after a real life, and the aliases PostHog already received."""

    log: bytes
    snapshot: bytes
    older_snapshot: bytes
    aliases: tuple[tuple[str, str], ...]


def _live(state_dir: Path) -> UsedDir:
    sink = RecordingSink()
    stitch = open_stitch(state_dir, sink=sink, devices=DeviceIds("orig"))
    stitch.login("user-a")
    older = (state_dir / "telemetry.json").read_bytes()
    stitch.logout()
    stitch.login("user-b")
    stitch.clear_distinct_id()
    return UsedDir(
        log=(state_dir / "identity.jsonl").read_bytes(),
        snapshot=(state_dir / "telemetry.json").read_bytes(),
        older_snapshot=older,
        aliases=tuple((a.device_id, a.user_id) for a in sink.aliases),
    )


def _newer(snapshot: bytes) -> bytes:
    data = json.loads(snapshot)
    data["seq"] += 3  # claims records the log does not have
    return json.dumps(data).encode()


def _damage_and_run(state_dir: Path, used: UsedDir, damaged: bytes, snapshot: str) -> None:
    """Lay the damaged dir, then three runs of login/logout, checking every promise."""
    for leftover in state_dir.iterdir():
        leftover.unlink()
    (state_dir / "identity.jsonl").write_bytes(damaged)
    if snapshot != "removed":
        chosen = {
            "kept": used.snapshot,
            "older": used.older_snapshot,
            "newer": _newer(used.snapshot),
        }[snapshot]
        (state_dir / "telemetry.json").write_bytes(chosen)
    aliased: dict[str, str] = dict(used.aliases)
    for run in range(3):
        sink = RecordingSink()
        warnings = _Warnings()
        with warnings.catching():
            stitch = open_stitch(state_dir, sink=sink, devices=DeviceIds(f"run{run}"))
            # The life ended with a clear, and each run with a logout: no user comes back,
            # unless a cut took the last records away with the snapshot that saw them.
            if run or not (used.log.startswith(damaged) and snapshot in ("removed", "older")):
                assert None is stitch.user_id, f"run {run}: a forgotten user came back"
            if run:
                assert Storage.HEALTHY == stitch.storage
            stitch.login(f"user-{run}")
            stitch.logout()
        if run:
            assert [] == warnings.messages, "only the run that heals may warn"
        for alias in sink.aliases:
            assert alias.device_id not in aliased, f"device aliased twice: {alias}"
            aliased[alias.device_id] = alias.user_id
    kept = [p.read_bytes() for p in state_dir.glob("identity.jsonl.damaged-*")]
    current = (state_dir / "identity.jsonl").read_bytes()
    assert damaged in kept or _only_torn_bytes_removed(damaged, current)
    assert replay(FileLog(state_dir / "identity.jsonl").records()).error is None


def _only_torn_bytes_removed(damaged: bytes, current: bytes) -> bool:
    """The log was not healed: it still holds every damaged byte but an unended last piece."""
    end = damaged.rfind(b"\n") + 1
    return current.startswith(damaged[:end]) and b"\n" not in damaged[end:]


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def catching(self) -> _Catching:
        return _Catching(self)


class _Catching:
    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler

    def __enter__(self) -> None:
        logging.getLogger("idstitch").addHandler(self.handler)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("idstitch").removeHandler(self.handler)


@pytest.fixture(scope="module")
def used(tmp_path_factory: pytest.TempPathFactory) -> UsedDir:
    return _live(tmp_path_factory.mktemp("used"))


def _last_record_cuts(log: bytes) -> Iterator[int]:
    start = log.rstrip(b"\n").rfind(b"\n") + 1
    yield from range(start, len(log))


@pytest.mark.slow
@pytest.mark.parametrize("snapshot", ["kept", "removed"])
def test_every_truncation_of_the_last_record_heals(
    used: UsedDir, tmp_path: Path, snapshot: str
) -> None:
    """Every cut inside the last record (a clear), with and without the snapshot."""
    state_dir = tmp_path / "dir"
    state_dir.mkdir()
    for cut in _last_record_cuts(used.log):
        _damage_and_run(state_dir, used, used.log[:cut], snapshot)


def _undetectable(log: bytes, damaged: bytes, snapshot: str) -> bool:
    """The known limit (docs/reliability.md): whole records cut off the end (their last
    newline may go too) while the snapshot is gone or older leave a valid, shorter log."""
    ends = {at + 1 for at, byte in enumerate(log) if byte == ord("\n")}
    whole = len(damaged) in ends or len(damaged) + 1 in ends
    return snapshot in ("removed", "older") and log.startswith(damaged) and whole


def test_the_known_limit_is_exactly_a_valid_shorter_log(used: UsedDir) -> None:
    """What the property leaves out is only whole records lost with the snapshot: every
    other cut is a torn tail or damage the rules catch."""
    log = used.log
    left_out = [at for at in range(len(log)) if _undetectable(log, log[:at], "removed")]
    ends = [at + 1 for at, byte in enumerate(log) if byte == ord("\n")]
    assert sorted({*ends[:-1], *(end - 1 for end in ends)} - {len(log)}) == left_out


def _damaged(log: bytes) -> st.SearchStrategy[bytes]:
    offsets = st.integers(0, len(log) - 1)
    cut = offsets.map(lambda at: log[:at])
    flip = st.tuples(offsets, st.integers(0, 7)).map(
        lambda t: log[: t[0]] + bytes([log[t[0]] ^ (1 << t[1])]) + log[t[0] + 1 :]
    )
    insert = st.tuples(offsets, st.binary(min_size=1, max_size=3)).map(
        lambda t: log[: t[0]] + t[1] + log[t[0] :]
    )
    return st.one_of(cut, flip, insert)


@settings(max_examples=examples(60))
@given(data=st.data())
def test_any_damage_heals_and_keeps_every_promise(
    used: UsedDir, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Drawn cuts, bit flips and inserted bytes anywhere, with each snapshot variant."""
    damaged = data.draw(_damaged(used.log), label="damaged log")
    snapshot = data.draw(st.sampled_from(SNAPSHOTS), label="snapshot")
    assume(not _undetectable(used.log, damaged, snapshot))
    _damage_and_run(tmp_path_factory.mktemp("dir"), used, damaged, snapshot)


#: Every STRIDE-th byte of the log is cut at, flipped and preceded by a NUL, under each
#: snapshot variant; ``IDSTITCH_RELIABILITY_DAMAGE_STRIDE=1`` sweeps every byte (a soak).
STRIDE = count("DAMAGE_STRIDE", 25)


@pytest.mark.slow
def test_a_sweep_of_cuts_flips_and_insertions_heals(used: UsedDir, tmp_path: Path) -> None:
    """Cuts, bit flips and inserted NULs at every STRIDE-th offset, each snapshot variant:
    every promise holds, except the documented limit (whole records lost with the snapshot)."""
    log = used.log
    state_dir = tmp_path / "dir"
    state_dir.mkdir()
    swept = 0
    for at in range(0, len(log), STRIDE):
        flipped = log[:at] + bytes([log[at] ^ 1]) + log[at + 1 :]
        for damaged in (log[:at], flipped, log[:at] + b"\x00" + log[at:]):
            for snapshot in SNAPSHOTS:
                if not _undetectable(log, damaged, snapshot):
                    _damage_and_run(state_dir, used, damaged, snapshot)
                    swept += 1
    assert swept >= 3 * len(SNAPSHOTS) * (len(log) // STRIDE) - 2 * len(SNAPSHOTS)
