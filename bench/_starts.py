"""B2 on every start path: what a host CLI's start costs and imports, whatever it finds.

Each path is a fresh interpreter that opens a state dir, reads
``distinct_id`` and takes the path's own step (an authenticated response,
a logout, or nothing), as a host CLI does on every command:

* **a** the steady start: a state dir holding the user, who is seen again;
* **b** a persistent first run: an empty state dir, the genesis written;
* **c** a persistent first authenticated response: the alias record
  written (the sink queues everything);
* **d** an ephemeral first response (``CI=true``): an in-memory log;
* **e** a container (a ``.dockerenv`` at the filesystem root): the same;
* **f** opted out (``DO_NOT_TRACK=1``) on an empty dir, on a dir holding
  a user, and an opted-out logout there (the one write opt-out allows).

A path that writes, or starts from an empty dir, runs on a fresh copy of
its template each time, made (and synced) before its round starts.
``tests/test_start_paths.py`` runs the same paths and checks what each
wrote and that none imported ``posthog``, ``pydantic``, ``transitions``
or ``orjson``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

__all__ = [
    "START_PATHS",
    "StartPath",
    "Starts",
    "script",
]

#: Where a path starts from: no state dir content, a genesis only, a user observed.
Start = Literal["empty", "started", "used"]


class StartPath(NamedTuple):
    """One start path: what it is, the dir it starts from, ``open``'s arguments, its step,
    whether it changes its state dir, and whether it runs in a container."""

    title: str
    start: Start
    open_args: str
    step: str
    writes: bool
    container: bool = False


_OBSERVE = "stitch.observe_authenticated_response(sys.argv[3])"
_PERSISTENT = "runtime='persistent', env={}"
_SENDING = "sink=NullSink(queued=True, sends=True)"
_OPTED_OUT = "env={'DO_NOT_TRACK': '1'}"

START_PATHS: dict[str, StartPath] = {
    "a": StartPath("steady persistent start", "used", _PERSISTENT, _OBSERVE, writes=False),
    "b": StartPath("persistent first run (genesis)", "empty", _PERSISTENT, "", writes=True),
    "c": StartPath(
        "persistent first response (alias)",
        "started",
        f"{_PERSISTENT}, {_SENDING}",
        _OBSERVE,
        writes=True,
    ),
    "d": StartPath(
        "ephemeral first response (CI)", "empty", "env={'CI': 'true'}", _OBSERVE, writes=False
    ),
    "e": StartPath(
        "container first response (.dockerenv)",
        "empty",
        f"env={{}}, {_SENDING}",
        _OBSERVE,
        writes=False,
        container=True,
    ),
    "f": StartPath("opted out, empty dir", "empty", _OPTED_OUT, _OBSERVE, writes=False),
    "f-held": StartPath(
        "opted out, dir holding a user", "used", _OPTED_OUT, _OBSERVE, writes=False
    ),
    "f-logout": StartPath(
        "opted out, logout (its one write)", "used", _OPTED_OUT, "stitch.logout()", writes=True
    ),
}

_BODY = """\
from idstitch.machine import IdentityStitch
from idstitch.service import NullSink
stitch = IdentityStitch.open(state_dir=sys.argv[1], root=sys.argv[2], {open_args})
stitch.distinct_id
{step}
"""
_REPORT = """\
_modules = sorted(set(sys.modules) - _before)
import json
print(json.dumps({"modules": _modules, "storage": stitch.storage.value,
                  "runtime": stitch.runtime.value, "distinct_id": stitch.distinct_id}))
"""


def script(path: StartPath, *, report: bool = False) -> str:
    """The child's program: ``argv`` is the state dir, the filesystem root and the user.

    ``report``: also print, as JSON, the modules the start imported (beyond
    those the interpreter started with), the storage, runtime and distinct id.
    """
    body = _BODY.format(open_args=path.open_args, step=path.step)
    if not report:
        return "import sys\n" + body
    return "import sys\n_before = set(sys.modules)\n" + body + _REPORT


class Starts:
    """The start paths' templates in ``work``, and fresh state dirs made from them.

    ``used`` is a state dir holding ``user`` (a steady dir); a genesis-only
    dir and two filesystem roots (a host's, and a container's with its
    ``.dockerenv``) are made beside it.
    """

    def __init__(self, work: Path, used: Path, user: str) -> None:
        from idstitch.machine import IdentityStitch

        self.work, self.user = work, user
        self.templates: dict[Start, Path | None] = {"empty": None, "used": used}
        started = work / "template-started"
        started.mkdir(parents=True, mode=0o700)
        IdentityStitch.open(state_dir=started, runtime="persistent", env={})
        self.templates["started"] = started
        self.host_root, self.container_root = work / "root-host", work / "root-container"
        self.host_root.mkdir()
        self.container_root.mkdir()
        (self.container_root / ".dockerenv").touch()
        self._made = 0

    def state_dir(self, path: StartPath) -> Path:
        """A state dir to run ``path`` on: the template itself for a path that writes nothing
        to it, else a fresh copy (a new empty dir for an empty start, whatever it writes)."""
        template = self.templates[path.start]
        if template is not None and not path.writes:
            return template
        self._made += 1
        folder = self.work / f"run-{self._made}"
        if folder.exists():
            shutil.rmtree(folder)
        if template is None:
            folder.mkdir(mode=0o700)
        else:
            shutil.copytree(template, folder)
        return folder

    def command(self, path: StartPath, state_dir: Path | None = None) -> list[str]:
        """The argv of one run of ``path`` (on a fresh dir unless ``state_dir`` is given)."""
        folder = self.state_dir(path) if state_dir is None else state_dir
        root = self.container_root if path.container else self.host_root
        return [sys.executable, "-c", script(path), str(folder), str(root), self.user]

    def factory(self, path: StartPath) -> Callable[[], list[str]]:
        """Makes the argv of each run of ``path``, its state dir prepared (before the clock)."""
        return lambda: self.command(path)

    def report(self, path: StartPath, env: Mapping[str, str]) -> dict[str, Any]:
        """One run of ``path`` that reports what it imported and where it left the identity."""
        argv = self.command(path)
        argv[2] = script(path, report=True)
        done = subprocess.run(  # noqa: S603 - this interpreter, on a fixed script
            argv, env=dict(env), check=True, capture_output=True, text=True
        )
        found: dict[str, Any] = json.loads(done.stdout)
        found["state_dir"] = argv[3]
        return found

    def clean(self) -> None:
        """Remove the dirs the runs used (the templates stay)."""
        for entry in self.work.glob("run-*"):
            shutil.rmtree(entry)
