"""Bar B2 on every start path: a host CLI's start imports none of posthog, pydantic,
transitions or orjson, whether it changes nothing, starts a log, writes an alias or keeps
the identity in memory (each path in a fresh interpreter, as a host CLI runs it; the paths
are the benchmark's, ``bench/_starts.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from idstitch.store import FileLog
from support.helpers import bare_environment

from bench._starts import START_PATHS, StartPath, script

#: The packages no start path may import (docs/performance.md, bar B2).
HEAVY = {"posthog", "pydantic", "transitions", "orjson"}


def run(path: StartPath, state_dir: Path, root: Path) -> dict[str, Any]:
    """One start of ``path`` in a fresh interpreter: the modules it imported, where it left
    the identity (storage, runtime, distinct id)."""
    environ = {k: v for k, v in bare_environment().items() if not k.startswith("IDSTITCH_")}
    done = subprocess.run(
        [sys.executable, "-c", script(path, report=True), str(state_dir), str(root), "user-a"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environ,
    )
    assert (0, "") == (done.returncode, done.stderr)
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def records(state_dir: Path) -> list[tuple[str, Any]]:
    """Each record of the state dir's log: its kind, and its alias flag where it has one."""
    log = FileLog(state_dir / "identity.jsonl")
    return [(r["kind"], r.get("alias")) for r in log.records(strict=True)] if log.exists() else []


def tree(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def roots(tmp_path: Path) -> dict[bool, Path]:
    """Filesystem roots: a host's (no marker) and, for ``True``, a container's (.dockerenv)."""
    host, container = tmp_path / "host-root", tmp_path / "container-root"
    host.mkdir()
    container.mkdir()
    (container / ".dockerenv").touch()
    return {False: host, True: container}


def state_dir_for(path: StartPath, tmp_path: Path, roots: dict[bool, Path]) -> Path:
    """A state dir as ``path`` starts from: empty, started (a first run: its genesis) or used
    (a first run that saw user-a)."""
    folder = tmp_path / "state"
    folder.mkdir()
    before = {"empty": None, "started": "b", "used": "a"}[path.start]
    if before is not None:
        run(START_PATHS[before], folder, roots[False])
    return folder


USED = [("genesis", None), ("response", False)]

#: path -> (storage, runtime, whether the id is the user's, the log's records after the run;
#: ``None``: the state dir is left exactly as it was).
EXPECTED: dict[str, tuple[str, str, bool, list[tuple[str, Any]] | None]] = {
    "a": ("healthy", "persistent", True, None),
    "b": ("healthy", "persistent", False, [("genesis", None)]),
    "c": ("healthy", "persistent", True, [("genesis", None), ("response", True)]),
    "d": ("read_only", "ephemeral", True, None),
    "e": ("read_only", "ephemeral", True, None),
    "f": ("read_only", "ephemeral", True, None),  # no state and no terminal: ephemeral
    "f-held": ("read_only", "persistent", True, None),
    "f-logout": ("read_only", "persistent", False, [*USED, ("logout", None)]),
}


def test_every_start_path_is_checked() -> None:
    """The paths checked here are the benchmark's, a to f."""
    assert sorted(EXPECTED) == sorted(START_PATHS)


@pytest.mark.processes
@pytest.mark.parametrize("name", sorted(START_PATHS))
def test_no_start_path_imports_a_heavy_package(
    name: str, tmp_path: Path, roots: dict[bool, Path]
) -> None:
    """Each start path does its work (writes what it must, nothing more) and imports none of
    posthog, pydantic, transitions or orjson."""
    path = START_PATHS[name]
    state_dir = state_dir_for(path, tmp_path, roots)
    before = tree(state_dir)
    found = run(path, state_dir, roots[path.container])
    heavy = sorted({module.split(".")[0] for module in found["modules"]} & HEAVY)
    storage, runtime, as_user, expected_records = EXPECTED[name]
    written = tree(state_dir) if expected_records is None else records(state_dir)
    assert (
        [],
        storage,
        runtime,
        as_user,
        before if expected_records is None else expected_records,
    ) == (heavy, found["storage"], found["runtime"], found["distinct_id"] == "user-a", written)


@pytest.mark.processes
def test_the_check_sees_a_heavy_package_when_one_is_imported(
    tmp_path: Path, roots: dict[bool, Path]
) -> None:
    """The same child reports the heavy packages its step imports (the strict reader's and
    the models')."""
    step = "list(stitch.log.records(strict=True)); from idstitch.events import record_problem"
    strict = START_PATHS["a"]._replace(step=step)
    found = run(strict, state_dir_for(strict, tmp_path, roots), roots[False])
    assert ["orjson", "pydantic"] == sorted({m.split(".")[0] for m in found["modules"]} & HEAVY)
