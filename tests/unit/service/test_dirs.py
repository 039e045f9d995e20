"""The default state dir (same answer as platformdirs) and which state dirs are trusted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from idstitch.service._dirs import default_state_dir, untrusted_reason

APP = "hostcli"

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the XDG layout is Linux's"
)


# --- default_state_dir -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xdg_state_home", "expected_under_tmp"),
    [
        ("xdg-state", "xdg-state/hostcli"),  # absolute (made so below): used as is
        (None, "home/.local/state/hostcli"),  # unset: ~/.local/state
        ("relative/state", "home/.local/state/hostcli"),  # relative: ignored, as XDG says
        ("", "home/.local/state/hostcli"),  # empty: ignored
        ("   ", "home/.local/state/hostcli"),  # blank: ignored
    ],
    ids=["absolute", "unset", "relative", "empty", "blank"],
)
@linux_only
def test_default_state_dir_matches_platformdirs(
    xdg_state_home: str | None,
    expected_under_tmp: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With HOME and XDG_STATE_HOME under tmp_path, the answer is platformdirs' and XDG's."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg_state_home is None:
        monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    elif xdg_state_home == "xdg-state":
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / xdg_state_home))
    else:
        monkeypatch.setenv("XDG_STATE_HOME", xdg_state_home)
    expected = str(tmp_path / expected_under_tmp)
    got = (default_state_dir(APP, os.environ), platformdirs.user_state_dir(APP))
    assert got == (expected, expected)


@linux_only
def test_default_state_dir_reads_the_given_mapping() -> None:
    """The environment is the mapping passed in, not ``os.environ``."""
    got = (
        default_state_dir(APP, {"HOME": "/home/alice", "XDG_STATE_HOME": "/srv/state"}),
        default_state_dir(APP, {"HOME": "/home/alice"}),
    )
    assert got == ("/srv/state/hostcli", "/home/alice/.local/state/hostcli")


@pytest.mark.parametrize(
    ("home", "xdg_state_home"),
    [("home", " /xdg-state"), ("home", "/xdg-state "), ("relative-home", None), ("", None)],
    ids=["xdg-leading-space", "xdg-trailing-space", "relative-home", "empty-home"],
)
@linux_only
def test_default_state_dir_matches_platformdirs_on_unusual_values(
    home: str,
    xdg_state_home: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Odd HOME and XDG_STATE_HOME values give platformdirs' answer too, as the docstring says."""
    monkeypatch.setenv("HOME", str(tmp_path / home) if home == "home" else home)
    if xdg_state_home is None:
        monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    else:
        padded = xdg_state_home.replace("/xdg-state", str(tmp_path / "xdg-state"))
        monkeypatch.setenv("XDG_STATE_HOME", padded)
    assert default_state_dir(APP, os.environ) == platformdirs.user_state_dir(APP)


# --- untrusted_reason --------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o700, 0o755])
def test_own_dir_not_writable_by_others_is_trusted(mode: int, tmp_path: Path) -> None:
    """A directory we own that others cannot write to is trusted."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state_dir.chmod(mode)
    assert untrusted_reason(str(state_dir)) is None


def test_missing_dir_is_trusted(tmp_path: Path) -> None:
    """A state dir that does not exist yet is no reason to refuse (it will be created)."""
    assert untrusted_reason(str(tmp_path / "missing")) is None


def test_world_writable_dir_is_untrusted(tmp_path: Path) -> None:
    """A directory anyone can write to is refused, and the reason shows its mode."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state_dir.chmod(0o777)
    assert untrusted_reason(str(state_dir)) == "it is writable by others (mode 777)"


def test_regular_file_is_untrusted(tmp_path: Path) -> None:
    """A regular file where the state dir should be is refused."""
    state_file = tmp_path / "state"
    state_file.write_text("")
    assert untrusted_reason(str(state_file)) == "it is not a directory"


@pytest.mark.parametrize("target", ["good-dir", "missing"])
def test_symlink_is_untrusted(target: str, tmp_path: Path) -> None:
    """A symlink is refused, whether it points at a good directory or at nothing."""
    good_dir = tmp_path / "good-dir"
    good_dir.mkdir(mode=0o700)
    link = tmp_path / "state"
    link.symlink_to(tmp_path / target)
    assert untrusted_reason(str(link)) == "it is a symlink"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another uid needs root"
)
def test_dir_owned_by_someone_else_is_untrusted(tmp_path: Path) -> None:
    """A directory owned by another uid is refused, and the reason names that uid."""
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    os.chown(state_dir, 12345, -1)
    assert untrusted_reason(str(state_dir)) == "it is owned by uid 12345, not by this user"


def test_uninspectable_path_is_untrusted(tmp_path: Path) -> None:
    """A path that cannot be stat-ed (here: under a regular file) is refused with the cause."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert untrusted_reason(str(blocker / "state")) == "cannot inspect it: Not a directory"


def test_a_path_with_a_nul_byte_keeps_the_identity_in_memory(tmp_path: Path) -> None:
    """R15: a state dir (or app name) holding a NUL byte, which no system call takes, is
    refused with the cause; the run keeps its identity in memory and raises nothing."""
    from idstitch.machine import IdentityStitch
    from idstitch.service import Storage

    bad = str(tmp_path / "state\0dir")
    assert "its path holds a NUL byte" == untrusted_reason(bad)
    for opened in (
        IdentityStitch.open(state_dir=bad, runtime="persistent", env={}),
        IdentityStitch.open(app="host\0cli", runtime="persistent", env={"HOME": str(tmp_path)}),
    ):
        assert opened.login("user-a")
        assert ("user-a", Storage.MEMORY, []) == (
            opened.distinct_id,
            opened.storage,
            os.listdir(tmp_path),
        )


_HOMELESS = """
import json, os
from idstitch.machine import IdentityStitch
stitch = IdentityStitch.open(app="hostcli", runtime="persistent", env={})
stitch.login("user-a")
print(json.dumps([stitch.persisting, stitch.state_dir, stitch.distinct_id, os.listdir(".")]))
"""


@pytest.mark.processes
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="running as another uid needs root"
)
@linux_only
def test_a_user_without_a_home_keeps_the_identity_in_memory(tmp_path: Path) -> None:
    """No HOME and no password entry: no state dir at all, never one under the working dir."""
    work = tmp_path / "cwd"
    work.mkdir(mode=0o777)
    # setpriv drops root at exec, after the interpreter's path was resolved (a Python
    # under /root stays runnable); without it, subprocess switches the uid itself.
    setpriv = shutil.which("setpriv")
    as_uid: dict[str, Any] = {} if setpriv else {"user": 54321, "group": 54321, "extra_groups": []}
    prefix = [setpriv, "--reuid=54321", "--regid=54321", "--clear-groups"] if setpriv else []
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _HOMELESS],
        **as_uid,
        cwd=work,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (0, "") == (done.returncode, done.stderr)
    assert [False, None, "user-a", []] == json.loads(done.stdout)
