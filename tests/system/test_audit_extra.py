"""The `[audit]` extra: with rich the terminal gets colours; without it, the same text, plain.

Nothing is uninstalled: the tool runs in a child interpreter where rich cannot
be imported (``sys.modules['rich'] = None`` makes every ``import rich...``
fail, as on an install without the extra), with its stdout or stderr on a real
pseudo-terminal.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from support.audit import (
    D1,
    D2,
    alias,
    clear,
    genesis,
    idstitch,
    logout,
    on_terminal,
    stamp,
    write_log,
)

#: The console script's program, run by this interpreter.
_TOOL = "from idstitch.audit.cli import main\nsys.argv[0] = 'idstitch'\nsys.exit(main())\n"
#: ``idstitch`` in an interpreter that cannot import rich.
WITHOUT_RICH = [sys.executable, "-c", "import sys\nsys.modules['rich'] = None\n" + _TOOL]
#: ``idstitch`` in an interpreter that can (the same program, rich left alone).
WITH_RICH = [sys.executable, "-c", "import sys\n" + _TOOL]
pytestmark = pytest.mark.processes

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _logs(folder: Path) -> dict[str, Path]:
    """A clean log, one whose device is aliased twice, and one torn at its end."""
    clean, twice, torn = folder / "clean.jsonl", folder / "twice.jsonl", folder / "torn.jsonl"
    write_log(clean, [genesis(), alias("user-a"), logout(D1, D2), alias("user-b", D2)])
    write_log(twice, [genesis(), alias("user-a"), alias("user-b", kind="login")])
    data = write_log(torn, [genesis(), alias("user-a")])
    torn.write_bytes(data[:-5])
    return {"clean": clean, "twice": twice, "torn": torn}


CASES = [
    ("replay", "clean"),
    ("replay", "torn"),
    ("verify", "clean"),
    ("verify", "twice"),
    ("persons", "twice"),
    ("persons", "torn"),
]


@pytest.mark.parametrize(("command", "log"), CASES)
def test_without_rich_a_terminal_gets_the_piped_text_and_exit_code(
    tmp_path: Path, command: str, log: str
) -> None:
    """No rich, stdout a terminal: exactly what a pipe gets, no escape sequence, the same exit."""
    path = _logs(tmp_path)[log]
    piped = idstitch(command, str(path))
    code, terminal, stderr = on_terminal([command, str(path)], "stdout", {}, tool=WITHOUT_RICH)
    shown = terminal.decode().replace("\r\n", "\n")
    assert (piped.code, piped.stdout, piped.stderr.encode()) == (code, shown, stderr)
    assert [] == _ESCAPE.findall(shown)


def test_without_rich_show_and_doctor_print_plain_on_a_terminal(tmp_path: Path) -> None:
    """No rich: show and doctor of a state dir print their piped text on a terminal, exit 0."""
    state = tmp_path / "state"
    state.mkdir()
    write_log(state / "identity.jsonl", [genesis(), alias("user-a")])
    found = []
    for args in (["show", "--state-dir", str(state)], ["doctor", str(state)]):
        piped = idstitch(*args)
        code, terminal, _ = on_terminal(args, "stdout", {}, tool=WITHOUT_RICH)
        found.append((code, terminal.decode().replace("\r\n", "\n")))
        assert (0, piped.stdout) == found[-1]
    assert [] == [shown for _, shown in found if _ESCAPE.search(shown)]


def test_without_rich_a_long_read_draws_no_bar_and_prints_every_row(tmp_path: Path) -> None:
    """No rich, stderr a terminal and the bar due at once: no bar, nothing on stderr, every row."""
    log = tmp_path / "identity.jsonl"
    cycle = [clear(), stamp("user-a")]
    write_log(log, [genesis(), alias("user-a"), *(cycle[n % 2] for n in range(3000))])
    code, terminal, stdout = on_terminal(
        ["replay", str(log)], "stderr", {"IDSTITCH_PROGRESS_DELAY": "0"}, tool=WITHOUT_RICH
    )
    piped = idstitch("replay", str(log))
    assert (piped.code, b"", piped.stdout.encode()) == (code, terminal, stdout)


def test_with_rich_a_terminal_gets_colours_and_the_same_text(tmp_path: Path) -> None:
    """With rich, stdout a terminal: coloured (escape sequences); without them, the piped text."""
    path = _logs(tmp_path)["twice"]
    piped = idstitch("verify", str(path))
    code, terminal, _ = on_terminal(["verify", str(path)], "stdout", {}, tool=WITH_RICH)
    shown = terminal.decode().replace("\r\n", "\n")
    assert (1, True, piped.stdout) == (
        code,
        "\x1b[1;31mL2 \x1b[0m" in shown,
        _ESCAPE.sub("", shown),
    )
