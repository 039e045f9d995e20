"""B8: the audit tool's own start, ``idstitch replay``, ``verify`` and ``show`` of a small log.

Each command is a fresh run of the console script (as a user types it),
timed against ``python -c pass``, interleaved (:func:`bench._process.timed_starts`),
on a log of :data:`SMALL_RECORDS` records and a state dir holding it.
``replay --strict`` (which reads with ``orjson`` and its line patterns, and
imports pydantic only for a line they do not prove) and
``persons`` are timed beside them for context. One more run of each
reports which of the modules the tool avoids on its start it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

__all__ = ["AUDIT_COMMANDS", "AVOIDED_MODULES", "SMALL_RECORDS", "AuditCommand", "AuditStarts"]

#: The length of B8's log.
SMALL_RECORDS = 20

#: Modules the tool's start avoids: argparse, orjson and what orjson loads, typing, re,
#: dataclasses; rich (only on a terminal); pydantic (only for a --strict line the patterns
#: of ``events/_shapes.py`` do not prove).
AVOIDED_MODULES = ("argparse", "dataclasses", "orjson", "pydantic", "re", "rich", "typing")


class AuditCommand(NamedTuple):
    """One timed command: its arguments after ``idstitch`` (``{log}`` and ``{dir}`` filled
    in), and whether it is one of the bar's three (else it is given for context)."""

    args: tuple[str, ...]
    bar: bool


AUDIT_COMMANDS: dict[str, AuditCommand] = {
    "replay": AuditCommand(("replay", "{log}"), bar=True),
    "verify": AuditCommand(("verify", "{log}"), bar=True),
    "show": AuditCommand(("show", "--state-dir", "{dir}"), bar=True),
    "persons": AuditCommand(("persons", "{log}"), bar=False),
    "replay --strict": AuditCommand(("replay", "--strict", "{log}"), bar=False),
}

#: The console script's program, for an interpreter with none installed beside it.
_TOOL = "import sys\nfrom idstitch.audit.cli import main\nsys.exit(main())"

_PROBE = """\
import sys
_before = set(sys.modules)
from idstitch.audit.cli import main
sys.argv = ["idstitch", *sys.argv[1:]]
code = main()
sys.stdout.flush()
found = sorted({m.split(".")[0] for m in set(sys.modules) - _before})
import json
sys.stderr.write("MODULES " + json.dumps({"code": code, "modules": found}) + "\\n")
"""


class AuditStarts:
    """The argv of each B8 command on ``log`` and ``state_dir``, and a probe of its imports."""

    def __init__(self, log: Path, state_dir: Path) -> None:
        self.log, self.state_dir = log, state_dir
        script = Path(sys.executable).parent / "idstitch"
        #: The console script a user runs, or its equal where none is installed beside python.
        self.tool = [str(script)] if script.is_file() else [sys.executable, "-c", _TOOL]

    def args(self, name: str) -> list[str]:
        """The arguments of command ``name`` after ``idstitch``."""
        fill = {"log": str(self.log), "dir": str(self.state_dir)}
        return [arg.format(**fill) for arg in AUDIT_COMMANDS[name].args]

    def command(self, name: str) -> list[str]:
        """The argv of one run of command ``name``."""
        return [*self.tool, *self.args(name)]

    def modules(self, name: str, env: Mapping[str, str]) -> list[str]:
        """The top-level packages among :data:`AVOIDED_MODULES` that command ``name`` imports."""
        done = subprocess.run(  # noqa: S603 - this interpreter, on a fixed script
            [sys.executable, "-c", _PROBE, *self.args(name)],
            env=dict(env),
            check=True,
            capture_output=True,
            text=True,
        )
        line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
        found = json.loads(line.removeprefix("MODULES "))
        if found["code"] != 0:
            raise RuntimeError(f"idstitch {name} exited {found['code']}: {done.stderr}")
        return sorted(set(found["modules"]) & set(AVOIDED_MODULES))
