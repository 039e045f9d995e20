"""A hostile state dir: symlinks, FIFOs, planted temporary names, umask 0, foreign owners."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import IdentityStitch, State
from idstitch.store import SNAPSHOT_FORMAT, read_snapshot, write_snapshot
from support.cli_hosts import Terminal
from support.reliability import run_host, seed_state_dir, tree

PRECIOUS = b"the user's own file: never written by idstitch\n"


def open_and_use(state_dir: Path, sink: RecordingSink | None = None) -> IdentityStitch:
    """Open ``state_dir`` (persistent) and go through a login, a command and a logout."""
    stitch = IdentityStitch.open(
        state_dir=state_dir, runtime="persistent", sink=sink or RecordingSink(), env={}
    )
    with stitch.command("deploy"):
        stitch.observe_authenticated_response("user-z")
    with Terminal() as terminal:
        stitch.first_run_notice("notice", stream=terminal.stream)
    stitch.logout()
    return stitch


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    """A file outside the state dir that a symlink will point at."""
    path = tmp_path / "elsewhere" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


# --- symlinks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["telemetry.json", "identity.jsonl", "identity.lock"])
@pytest.mark.parametrize("existing", [True, False], ids=["existing-state", "fresh-dir"])
def test_a_symlink_in_the_state_dir_is_never_written_through(
    tmp_path: Path, precious: Path, name: str, existing: bool
) -> None:
    """Each of the three files replaced by a symlink to another file, in a used and a fresh dir.

    Six cases, each opened and driven through login, command, notice and
    logout: the target keeps its bytes and mode, and the identity keeps
    working on disk. A linked snapshot is replaced (the link itself); a
    linked log or lock is kept aside as the link it is (never followed)
    and a regular file of our own takes its place, the log's records kept.
    """
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    seeded = seed_state_dir(state_dir) if existing else b""
    if existing:
        (state_dir / name).unlink()
    if name == "identity.jsonl":
        seeded = b""  # the log itself is the link: its records went with the file
    (state_dir / name).symlink_to(precious)
    before = tree(precious.parent)
    sink = RecordingSink()
    stitch = open_and_use(state_dir, sink)
    assert before == tree(precious.parent)
    assert (State.RESET, None, True) == (stitch.state, stitch.user_id, stitch.persisting)
    assert (state_dir / "identity.jsonl").read_bytes().startswith(seeded)
    if name == "telemetry.json":
        assert "ok" == read_snapshot(state_dir / name).status  # the link itself was replaced
    else:
        kept = state_dir / f"{name}.damaged-1"
        assert (str(precious), stat.S_IFREG) == (
            os.readlink(kept),
            stat.S_IFMT(os.lstat(state_dir / name).st_mode),
        )


@pytest.mark.parametrize("name", ["telemetry.json", "identity.jsonl", "identity.lock"])
def test_a_dangling_symlink_never_creates_its_target(tmp_path: Path, name: str) -> None:
    """A symlink to a path that does not exist (3 cases): the target is never created."""
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    target = tmp_path / "elsewhere" / "created-through-a-link"
    target.parent.mkdir()
    (state_dir / name).symlink_to(target)
    open_and_use(state_dir)
    assert [] == os.listdir(target.parent)


def test_a_symlinked_state_dir_is_refused(
    tmp_path: Path, precious: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The state dir itself a symlink to a real dir: refused with one warning, nothing written."""
    real = precious.parent
    link = tmp_path / "state"
    link.symlink_to(real, target_is_directory=True)
    before = tree(real)
    caplog.set_level(logging.DEBUG, logger="idstitch")
    stitch = open_and_use(link)
    assert (before, False) == (tree(real), stitch.persisting)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    expected = (
        f"idstitch: not using the state dir {link}: it is a symlink; "
        "this run keeps the identity in memory"
    )
    assert [expected] == warnings


# --- FIFOs: never hang the host --------------------------------------------------------


@pytest.mark.processes
@pytest.mark.parametrize("name", ["telemetry.json", "identity.jsonl", "identity.lock"])
@pytest.mark.parametrize("existing", [True, False], ids=["existing-state", "fresh-dir"])
def test_a_fifo_in_the_state_dir_never_hangs_the_host(
    tmp_path: Path, name: str, existing: bool
) -> None:
    """A named pipe in place of each file (6 cases): the host script finishes, exit 0, in time.

    Opening a FIFO for reading blocks until a writer appears; before the
    fix this hung the host CLI at start-up forever. A FIFO as the log is
    damage: kept aside unread (still a FIFO) and healed, with one warning;
    the other files' FIFOs pass silently. Either way the run persists.
    """
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    seeded = seed_state_dir(state_dir) if existing else b""
    if existing:
        (state_dir / name).unlink()
    os.mkfifo(state_dir / name, 0o600)
    run = run_host(state_dir, "login:user-z", "logout", timeout=20)
    assert run.report is not None
    assert (0, "reset", True) == (run.returncode, run.report["state"], run.report["persisting"])
    if name != "identity.jsonl":
        assert "" == run.stderr
        assert (state_dir / "identity.jsonl").read_bytes().startswith(seeded)
        return
    kept = state_dir / "identity.jsonl.damaged-1"
    healed = (
        f"WARNING:idstitch.service:idstitch: the identity log {state_dir / name} was damaged "
        f"({name} is a FIFO, not a regular file); it was kept as {kept}, byte for byte"
    )
    assert ([healed], True) == (
        [line.split(", and a new log")[0] for line in run.stderr.splitlines()],
        stat.S_ISFIFO(os.lstat(kept).st_mode),
    )


# --- temporary files -------------------------------------------------------------------


def test_temporary_snapshot_files_are_created_exclusively_in_the_state_dir(
    tmp_path: Path, precious: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Links planted at write_snapshot's first two temporary names (live, dangling) are skipped.

    write_snapshot must step over both (O_EXCL: EEXIST even for a dangling
    link), write through the third name in the same directory, and leave
    the targets alone: 1 write, 3 names tried.
    """
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    dangling = tmp_path / "elsewhere" / "never-created"
    names = iter(["planted1", "planted2", "free3", "free4"])
    tried: list[str] = []

    def token() -> str:
        tried.append(next(names))
        return tried[-1]

    (state_dir / ".telemetry.json.planted1.tmp").symlink_to(precious)
    (state_dir / ".telemetry.json.planted2.tmp").symlink_to(dangling)
    before = tree(precious.parent)
    monkeypatch.setattr("idstitch.store._snapshot._token", token)
    write_snapshot(state_dir / "telemetry.json", {"seq": 1})
    monkeypatch.undo()
    assert ["planted1", "planted2", "free3"] == tried
    assert before == tree(precious.parent)
    expected = [".telemetry.json.planted1.tmp", ".telemetry.json.planted2.tmp", "telemetry.json"]
    assert expected == sorted(os.listdir(state_dir))
    assert (SNAPSHOT_FORMAT, 0o600) == (
        read_snapshot(state_dir / "telemetry.json").data["format"],
        stat.S_IMODE(os.stat(state_dir / "telemetry.json").st_mode),
    )
    # The service removes planted names (it holds the lock, so none is a live write),
    # unlinking the links themselves, never their targets.
    open_and_use(state_dir)
    assert before == tree(precious.parent)
    assert not dangling.exists()
    assert [] == [n for n in os.listdir(state_dir) if n.endswith(".tmp")]


# --- modes under a permissive umask ----------------------------------------------------


def test_files_are_0600_and_dirs_0700_under_umask_0(tmp_path: Path) -> None:
    """Under umask 0, a first run in a default state dir three levels deep creates only 0600/0700.

    One run through open (genesis, snapshot), login, notice, a corrupt
    snapshot kept aside byte for byte (``telemetry.json.corrupt-1``) and
    rebuilt, and logout.
    """
    env = {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": ""}
    (tmp_path / "home").mkdir(mode=0o755)
    old = os.umask(0)
    try:
        stitch = IdentityStitch.open("mycli", runtime="persistent", sink=RecordingSink(), env=env)
        stitch.login("user-a")
        with Terminal() as terminal:
            assert stitch.first_run_notice("notice", stream=terminal.stream)
        state_dir = Path(stitch.state_dir or "")
        (state_dir / "telemetry.json").write_bytes(b"garbage")  # written 0666 under umask 0
        os.chmod(state_dir / "telemetry.json", 0o600)
        stitch = IdentityStitch.open("mycli", runtime="persistent", sink=RecordingSink(), env=env)
        stitch.logout()
    finally:
        os.umask(old)
    found = {name: (kind, oct(mode)) for name, (kind, mode, _) in tree(tmp_path / "home").items()}
    assert {
        ".": ("dir", "0o755"),
        ".local": ("dir", "0o700"),
        ".local/state": ("dir", "0o700"),
        ".local/state/mycli": ("dir", "0o700"),
        ".local/state/mycli/identity.jsonl": ("file", "0o600"),
        ".local/state/mycli/identity.lock": ("file", "0o600"),
        ".local/state/mycli/notice-shown": ("file", "0o600"),
        ".local/state/mycli/telemetry.json": ("file", "0o600"),
        ".local/state/mycli/telemetry.json.corrupt-1": ("file", "0o600"),
    } == found
    assert b"garbage" == (state_dir / "telemetry.json.corrupt-1").read_bytes()


# --- state dirs that are not ours ------------------------------------------------------


@pytest.mark.parametrize("how", ["owned-by-uid-12345", "world-writable", "group-and-world-0777"])
def test_a_state_dir_that_is_not_ours_is_refused_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """A state dir with a good log in it, then chowned or chmodded (3 cases).

    Open, login, command, notice and logout: exactly one warning (naming the
    dir and why), not one byte or mode changed in the dir, identity in
    memory, no alias sent (nothing could record it).
    """
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    seed_state_dir(state_dir)
    if how.startswith("owned"):
        if os.geteuid() != 0:
            pytest.skip("chown to another uid needs root")
        os.chown(state_dir, 12345, -1)
        reason = "it is owned by uid 12345, not by this user"
    else:
        mode = 0o703 if how == "world-writable" else 0o777
        os.chmod(state_dir, mode)
        reason = f"it is writable by others (mode {mode:o})"
    before = tree(state_dir)
    caplog.set_level(logging.DEBUG, logger="idstitch")
    sink = RecordingSink()
    stitch = open_and_use(state_dir, sink)
    assert before == tree(state_dir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    expected = (
        f"idstitch: not using the state dir {state_dir}: {reason}; "
        "this run keeps the identity in memory"
    )
    assert [expected] == warnings
    assert (False, None, []) == (stitch.persisting, stitch.state_dir, sink.aliases)
