"""The snapshot file: atomic writes, reads that never raise, and many writers at once (R12)."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idstitch.store import (
    MAX_SNAPSHOT_BYTES,
    SNAPSHOT_FORMAT,
    SNAPSHOT_VERSION,
    SnapshotRead,
    read_snapshot,
    sweep_temporaries,
    temporary_affixes,
    write_snapshot,
)
from support.helpers import bare_environment
from support.strategies import examples
from support.workers import write_beyond_file_size_limit

MARKER = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION}
STATE: dict[str, object] = {"seq": 3, "h": "ab" * 16, "state": "stamped", "user_id": "user-42"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
states = st.dictionaries(
    st.text(max_size=12).filter(lambda k: k not in {"format", "version"}), json_values, max_size=6
)


@pytest.fixture
def snapshot_path(tmp_path: Path) -> Path:
    """Where a test's snapshot lives: a state dir that does not exist yet."""
    return tmp_path / "state" / "telemetry.json"


def names_in(directory: Path) -> list[str]:
    """Every entry of ``directory``, hidden ones included, sorted."""
    return sorted(os.listdir(directory))


# --- round trips ------------------------------------------------------------------------


@settings(max_examples=examples(25), deadline=None)
@given(state=states)
def test_a_written_snapshot_reads_back(state: dict[str, object]) -> None:
    """read_snapshot returns exactly what write_snapshot wrote, plus the format marker."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "telemetry.json"
        write_snapshot(path, state)
        assert SnapshotRead("ok", {**MARKER, **state}) == read_snapshot(path)
        assert ["telemetry.json"] == names_in(Path(directory))


def test_writes_replace_the_file_and_leave_no_temporary_files(snapshot_path: Path) -> None:
    """Each write replaces the whole snapshot (0600, dir 0700) and leaves nothing else behind."""
    for seq in range(1, 6):
        write_snapshot(snapshot_path, {**STATE, "seq": seq})
    assert SnapshotRead("ok", {**MARKER, **STATE, "seq": 5}) == read_snapshot(snapshot_path)
    assert ["telemetry.json"] == names_in(snapshot_path.parent)
    modes = [stat.S_IMODE(os.stat(p).st_mode) for p in (snapshot_path.parent, snapshot_path)]
    assert [0o700, 0o600] == modes


@pytest.mark.parametrize("key", ["format", "version"])
def test_a_state_holding_a_marker_key_is_refused_and_nothing_written(
    snapshot_path: Path, key: str
) -> None:
    """A state that would override the format marker is refused; the old snapshot stays."""
    write_snapshot(snapshot_path, STATE)
    with pytest.raises(ValueError, match=key):
        write_snapshot(snapshot_path, {**STATE, key: "idstitch-snapshot"})
    assert SnapshotRead("ok", {**MARKER, **STATE}) == read_snapshot(snapshot_path)
    assert ["telemetry.json"] == names_in(snapshot_path.parent)


# --- reads that never raise -----------------------------------------------------------


def test_a_missing_snapshot_is_reported_missing(snapshot_path: Path) -> None:
    """No file (or no directory) is 'missing', not an error."""
    assert SnapshotRead("missing") == read_snapshot(snapshot_path)


CORRUPT: list[tuple[str, bytes, str | None]] = [
    # (case, content, exact problem, or None where only "not JSON: ..." is promised)
    ("garbage", b"\x00\x01 this is not json", None),
    ("truncated", b'{"format":"idstitch-snapshot","version":1,"seq":3', None),
    ("empty", b"", None),
    ("invalid-utf8", b'{"format":"idstitch-snapshot","version":1,"x":"\xff\xfe"}', None),
    ("nan", b'{"format":"idstitch-snapshot","version":1,"x":NaN}', None),
    ("trailing-data", b'{"format":"idstitch-snapshot","version":1} {}', None),
    ("deep-nesting", b"[" * 60_000, "not JSON: RecursionError"),
    ("deep-nesting-100k", b"[" * 100_000, f"larger than {MAX_SNAPSHOT_BYTES} bytes"),
    (
        "2-megabytes",
        b'{"x":"' + b"y" * 2_000_000 + b'"}',
        f"larger than {MAX_SNAPSHOT_BYTES} bytes",
    ),
    ("a-list", b"[1, 2, 3]", "not a JSON object"),
    ("a-string", b'"idstitch-snapshot"', "not a JSON object"),
    ("null", b"null", "not a JSON object"),
    ("no-version", b'{"format":"idstitch-snapshot"}', "no integer version"),
    ("string-version", b'{"format":"idstitch-snapshot","version":"1"}', "no integer version"),
    ("bool-version", b'{"format":"idstitch-snapshot","version":true}', "no integer version"),
    (
        "version-0",
        b'{"format":"idstitch-snapshot","version":0}',
        "snapshot version 0 never existed",
    ),
]


@pytest.mark.parametrize(
    ("content", "problem"), [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT]
)
def test_a_corrupt_snapshot_is_reported_corrupt(
    snapshot_path: Path, content: bytes, problem: str | None
) -> None:
    """Garbage, bad UTF-8, deep nesting, huge files, wrong types: 'corrupt', never an exception."""
    snapshot_path.parent.mkdir(mode=0o700)
    snapshot_path.write_bytes(content)
    found = read_snapshot(snapshot_path)
    if problem is None:
        assert ("corrupt", {}, "not JSON: ") == (
            found.status,
            found.data,
            (found.problem or "")[: len("not JSON: ")],
        )
    else:
        assert SnapshotRead("corrupt", problem=problem) == found


@pytest.mark.processes
def test_corrupt_snapshots_never_raise_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """In a process that has not imported json, every corrupt file still reads as 'corrupt'."""
    paths = []
    for case, content, _ in CORRUPT:
        path = tmp_path / f"{case}.json"
        path.write_bytes(content)
        paths.append(str(path))
    script = (
        "import sys\n"
        "from idstitch.store import read_snapshot\n"
        "json_loaded = 'json' in sys.modules\n"
        "statuses = [read_snapshot(p).status for p in sys.argv[1:]]\n"
        "print(json_loaded, ' '.join(statuses))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *paths],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=bare_environment(),
    )
    expected = (0, "False " + " ".join(["corrupt"] * len(CORRUPT)) + "\n", "")
    assert expected == (result.returncode, result.stdout, result.stderr)


def test_a_directory_at_the_snapshot_path_is_reported_corrupt(snapshot_path: Path) -> None:
    """A directory where the snapshot should be cannot be read: 'corrupt', with the reason."""
    snapshot_path.mkdir(parents=True)
    expected = SnapshotRead("corrupt", problem=f"cannot read: {os.strerror(errno.EISDIR)}")
    assert expected == read_snapshot(snapshot_path)
    assert "SnapshotRead('missing', data={}, problem=None)" == repr(SnapshotRead("missing"))


def test_a_newer_snapshot_is_reported_newer(snapshot_path: Path) -> None:
    """A snapshot of a later version is 'newer' (the caller rebuilds from the log)."""
    snapshot_path.parent.mkdir(mode=0o700)
    snapshot_path.write_text(json.dumps({"format": SNAPSHOT_FORMAT, "version": 3, "seq": 9}))
    expected = SnapshotRead("newer", problem="snapshot version 3 is newer than this build")
    assert expected == read_snapshot(snapshot_path)


@pytest.mark.parametrize("version", range(1, SNAPSHOT_VERSION + 1))
def test_a_snapshot_of_every_version_up_to_this_builds_reads_ok(
    snapshot_path: Path, version: int
) -> None:
    """A snapshot an earlier build wrote (version 1: no consent recorded) reads 'ok', as it is."""
    written = {"format": SNAPSHOT_FORMAT, "version": version, **STATE}
    snapshot_path.parent.mkdir(mode=0o700)
    snapshot_path.write_text(json.dumps(written))
    assert SnapshotRead("ok", written) == read_snapshot(snapshot_path)


def test_a_snapshot_of_up_to_64_kib_reads_and_one_byte_more_is_refused_unread(
    snapshot_path: Path,
) -> None:
    """The size limit is 64 KiB: a snapshot of exactly 65,536 bytes reads 'ok', one of 65,537
    is 'corrupt' (larger than the limit), whatever it holds."""
    limit = 64 * 1024
    write_snapshot(snapshot_path, {**STATE, "pad": ""})
    room = limit - snapshot_path.stat().st_size
    found = []
    for pad in ("x" * room, "x" * (room + 1)):
        write_snapshot(snapshot_path, {**STATE, "pad": pad})
        found.append((snapshot_path.stat().st_size, read_snapshot(snapshot_path)))
    assert [
        (limit, SnapshotRead("ok", {**MARKER, **STATE, "pad": "x" * room})),
        (limit + 1, SnapshotRead("corrupt", problem=f"larger than {limit} bytes")),
    ] == found


def test_a_json_object_without_the_marker_is_foreign(snapshot_path: Path) -> None:
    """Another tool's state file is 'foreign' and its data is handed over for the import."""
    foreign = {"device_id": "3b2a1c0d-9e8f-4a7b-b6c5-d4e3f2a1b0c9", "distinct_id": "user-7"}
    snapshot_path.parent.mkdir(mode=0o700)
    snapshot_path.write_text(json.dumps(foreign))
    assert SnapshotRead("foreign", foreign) == read_snapshot(snapshot_path)


def test_a_symlink_at_the_snapshot_path_is_not_followed(tmp_path: Path) -> None:
    """Reading through a symlink is 'corrupt' (ELOOP); a write replaces the link, not its target."""
    target = tmp_path / "elsewhere.json"
    write_snapshot(target, STATE)
    original = target.read_bytes()
    link = tmp_path / "state" / "telemetry.json"
    link.parent.mkdir(mode=0o700)
    link.symlink_to(target)
    expected = SnapshotRead("corrupt", problem=f"cannot open: {os.strerror(errno.ELOOP)}")
    assert expected == read_snapshot(link)
    write_snapshot(link, {**STATE, "seq": 4})
    assert (False, original) == (link.is_symlink(), target.read_bytes())
    assert SnapshotRead("ok", {**MARKER, **STATE, "seq": 4}) == read_snapshot(link)


# --- failed writes ------------------------------------------------------------------


def test_a_write_under_a_regular_file_fails_cleanly(tmp_path: Path) -> None:
    """If the state dir cannot exist (its parent is a file), write raises OSError, makes nothing."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"a file\n")
    with pytest.raises(OSError, match=r"File exists|Not a directory") as caught:
        write_snapshot(blocker / "state" / "telemetry.json", STATE)
    assert caught.value.errno in {errno.ENOTDIR, errno.EEXIST}
    assert (["not-a-dir"], b"a file\n") == (names_in(tmp_path), blocker.read_bytes())


@pytest.mark.processes
def test_a_write_that_fails_midway_keeps_the_old_snapshot(snapshot_path: Path) -> None:
    """A write cut short by the file size limit (EFBIG) leaves the old snapshot and no temp file."""
    write_snapshot(snapshot_path, STATE)
    before = snapshot_path.read_bytes()
    context = multiprocessing.get_context("spawn")
    child = context.Process(
        target=write_beyond_file_size_limit, args=(str(snapshot_path), 1024, 64 * 1024)
    )
    child.start()
    child.join(60)
    assert (errno.EFBIG, before) == (child.exitcode, snapshot_path.read_bytes())
    assert ["telemetry.json"] == names_in(snapshot_path.parent)
    assert SnapshotRead("ok", {**MARKER, **STATE}) == read_snapshot(snapshot_path)


# --- two writes at once (R12) -----------------------------------------------------------


def write_while_another_writes(
    monkeypatch: pytest.MonkeyPatch, path: Path, first: int, second: int
) -> tuple[list[str], list[OSError]]:
    """Write ``seq`` ``first`` to ``path``; when its temporary is written, just before its rename,
    a second write of ``seq`` ``second`` runs whole. Returns the names of the temporaries renamed
    (in rename order) and the second write's error, if it raised one."""
    started: list[int] = []
    renamed: list[str] = []
    refused: list[OSError] = []
    replace = os.replace

    def replace_after_a_second_write(source: str, target: str) -> None:
        if not started:
            started.append(second)
            try:
                write_snapshot(path, {**STATE, "seq": second})
            except OSError as exc:
                refused.append(exc)
        renamed.append(os.path.basename(source))
        replace(source, target)

    monkeypatch.setattr(os, "replace", replace_after_a_second_write)
    write_snapshot(path, {**STATE, "seq": first})
    return renamed, refused


def test_two_writes_at_once_never_share_a_temporary(
    snapshot_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that starts while another's temporary is still there writes a temporary of its
    own: both complete, the last rename wins, and no temporary is left (R12)."""
    renamed, refused = write_while_another_writes(monkeypatch, snapshot_path, 1, 2)
    nothing: list[OSError] = []
    assert (2, nothing, SnapshotRead("ok", {**MARKER, **STATE, "seq": 1})) == (
        len(set(renamed)),
        refused,
        read_snapshot(snapshot_path),
    )
    assert ["telemetry.json"] == names_in(snapshot_path.parent)


def test_a_write_that_finds_no_free_temporary_name_gives_up_and_harms_nothing(
    snapshot_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every temporary name a write draws is taken (the random source made to repeat the
    name of a write in progress), it gives up with FileExistsError (EEXIST, naming the dir),
    never loops for ever, and leaves the other write's temporary alone: that write completes."""
    write_snapshot(snapshot_path, {**STATE, "seq": 0})
    monkeypatch.setattr(os, "urandom", bytes)  # urandom(n) is n zero bytes: one draw, always
    _, refused = write_while_another_writes(monkeypatch, snapshot_path, 1, 2)
    assert (
        [(FileExistsError, errno.EEXIST, str(snapshot_path.parent))],
        SnapshotRead("ok", {**MARKER, **STATE, "seq": 1}),
        ["telemetry.json"],
    ) == (
        [(type(exc), exc.errno, exc.filename) for exc in refused],
        read_snapshot(snapshot_path),
        names_in(snapshot_path.parent),
    )


# --- temporary files a killed writer left ------------------------------------------------


def test_write_snapshot_names_its_temporary_files_by_temporary_affixes(
    snapshot_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temporary file a write renames into place starts and ends as temporary_affixes says."""
    renamed: list[str] = []
    replace = os.replace

    def recording_replace(source: str, target: str) -> None:
        renamed.append(os.path.basename(source))
        replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)
    write_snapshot(snapshot_path, STATE)
    prefix, suffix = temporary_affixes("telemetry.json")
    assert ((".telemetry.json.", ".tmp"), [True]) == (
        (prefix, suffix),
        [n.startswith(prefix) and n.endswith(suffix) and len(n) > 20 for n in renamed],
    )


def test_sweep_temporaries_removes_only_the_files_temporaries(snapshot_path: Path) -> None:
    """Only .<name>.<random>.tmp files go; the snapshot, others' temporaries, look-alikes stay."""
    write_snapshot(snapshot_path, STATE)
    folder = snapshot_path.parent
    left = [".telemetry.json.k1ll3d.tmp", ".telemetry.json.x.tmp"]
    kept = [
        ".telemetry.json.tmp",
        ".identity.pending.abc.tmp",
        "telemetry.json.abc.tmp",
        ".telemetry.json.abc.tmp.bak",
        "telemetry.json",
    ]
    for name in left + kept[:-1]:
        (folder / name).write_bytes(b"{")
    removed = sweep_temporaries(snapshot_path)
    assert (sorted(left), sorted(kept), []) == (
        sorted(removed),
        names_in(folder),
        sweep_temporaries(snapshot_path),
    )


def test_sweep_temporaries_takes_a_listing_and_never_raises(snapshot_path: Path) -> None:
    """Given the folder's names it lists nothing itself; a name already gone or a missing folder
    is no error."""
    snapshot_path.parent.mkdir(mode=0o700)
    (snapshot_path.parent / ".telemetry.json.a.tmp").write_bytes(b"")
    names = [".telemetry.json.a.tmp", ".telemetry.json.gone.tmp"]
    nothing: list[str] = []
    expected = ([".telemetry.json.a.tmp"], nothing, nothing)
    assert expected == (
        sweep_temporaries(snapshot_path, names),
        names_in(snapshot_path.parent),
        sweep_temporaries(snapshot_path.parent / "missing" / "telemetry.json"),
    )


def test_a_temporary_that_cannot_be_removed_is_left_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A left-over temporary the sweep cannot remove (here a directory of that name) stays for
    the next sweep, is not reported as removed, and is named in a debug message; the others
    go."""
    prefix, suffix = temporary_affixes("telemetry.json")
    stuck, gone = f"{prefix}stuck{suffix}", f"{prefix}gone{suffix}"
    (tmp_path / stuck).mkdir()
    (tmp_path / gone).write_text("{}")
    with caplog.at_level(logging.DEBUG, logger="idstitch.store"):
        removed = sweep_temporaries(tmp_path / "telemetry.json")
    said = [r.getMessage() for r in caplog.records if r.name == "idstitch.store"]
    assert ([gone], [stuck]) == (removed, sorted(os.listdir(tmp_path)))
    assert [m for m in said if "could not remove" in m and stuck in m] != []


def test_reads_are_equal_only_when_status_data_and_problem_all_are() -> None:
    """Two snapshot reads compare equal only when status, data and problem all match; a read
    is never equal to another kind of value."""
    ok = SnapshotRead("ok", {"seq": 1})
    assert [True, False, False, False, False] == [
        ok == SnapshotRead("ok", {"seq": 1}),
        ok == SnapshotRead("ok", {"seq": 2}),
        ok == SnapshotRead("corrupt", {"seq": 1}),
        SnapshotRead("corrupt", problem="a") == SnapshotRead("corrupt", problem="b"),
        ok == ("ok", {"seq": 1}, None),
    ]


def test_writing_snapshots_leaks_no_file_descriptor(tmp_path: Path) -> None:
    """Every write closes its temporary file: a long-lived host writing many snapshots never
    runs out of descriptors."""
    path = tmp_path / "telemetry.json"
    write_snapshot(path, {"seq": 0})
    before = len(os.listdir("/proc/self/fd"))
    for seq in range(1, 21):
        write_snapshot(path, {"seq": seq})
    assert (before, 20) == (len(os.listdir("/proc/self/fd")), read_snapshot(path).data["seq"])
