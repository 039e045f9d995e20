"""Ids are data, never terminal instructions: text output escapes what is not printable.

A log read by the checked reader may hold any string as an id (only
``--strict`` applies R13). A newline in one would forge a timeline row, an
escape sequence would drive the auditor's terminal, a lone surrogate would
not even encode. Every text line the audit tool prints goes through one
place that shows such characters as escapes; ``--json`` keeps the exact value.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from idstitch.audit._render import Output, printable
from support.audit import alias, genesis, idstitch, write_log

#: A user id that would forge a row, clear the screen and not encode as UTF-8.
HOSTILE = "user-a\n     3  2026-11-27T17:00:02.000000Z  logout  aliased → reset\x1b[2J\x85\u202e"


def test_printable_shows_each_unprintable_character_as_its_escape() -> None:
    """C0, C1, format characters and lone surrogates become escapes; printable text stays."""
    assert "plain José ü" == printable("plain José ü")
    assert "a\\x0ab\\x1b[2J\\x85\\u202e\\ud800\\U000e0001" == printable(
        "a\nb\x1b[2J\x85\u202e\ud800\U000e0001"
    )
    assert "caf\\xe9" == printable(os.fsdecode(b"caf\xe9"))  # a path's non-UTF-8 byte


@pytest.mark.processes
@pytest.mark.parametrize("command", ["replay", "persons"])
def test_text_output_never_carries_an_ids_control_characters(tmp_path: Path, command: str) -> None:
    """One row per record however the ids are made: nothing unprintable reaches the reader."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias(HOSTILE)])
    result = idstitch(command, str(log))
    lines = result.stdout.splitlines()
    assert all(line.isprintable() for line in lines), lines
    assert any("user-a\\x0a     3  2026" in line for line in lines), lines
    if command == "replay":
        assert (0, 2) == (result.code, sum(line.lstrip()[:1].isdigit() for line in lines))


@pytest.mark.processes
def test_json_output_keeps_the_exact_id(tmp_path: Path) -> None:
    """``--json`` is for machines: the id is the log's own string, escaped by JSON only."""
    log = tmp_path / "identity.jsonl"
    write_log(log, [genesis(), alias(HOSTILE)])
    out = idstitch("replay", str(log), "--json").stdout
    rows = [json.loads(line) for line in out.split("\n") if line]  # U+0085 is no line end here
    assert [None, HOSTILE] == [row.get("user_id") for row in rows if row["type"] == "record"]


def test_styled_output_escapes_too() -> None:
    """The rich path (a terminal) escapes the same characters as the plain one."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    out = Output(stream, as_json=False)
    assert out.styled
    out.text("id ", (HOSTILE, "bold"))
    shown = stream.getvalue()
    assert "\x1b[2J" not in shown
    assert "\\x1b[2J" in shown


@pytest.mark.processes
def test_an_error_line_shows_a_paths_control_characters_escaped(tmp_path: Path) -> None:
    """The one stderr line for an unusable input stays one line, whatever the path holds."""
    hostile = tmp_path / "log\nidstitch: error: forged\x1b[2J"
    result = idstitch("replay", str(hostile))
    assert (2, 1) == (result.code, len(result.stderr.splitlines()))
    assert "log\\x0aidstitch: error: forged\\x1b[2J" in result.stderr


@pytest.mark.processes
def test_an_error_line_shows_a_paths_non_utf8_byte_as_that_byte(tmp_path: Path) -> None:
    """Every command names an unusable path the same way show does: the byte, ``\\xe9``."""
    missing = os.fsencode(tmp_path) + b"/log\xe9.jsonl"
    result = idstitch("replay", os.fsdecode(missing))
    assert (2, True) == (result.code, f"{tmp_path}/log\\xe9.jsonl" in result.stderr)
