"""The standard-library JSON reader of the events floor: loads (the snapshot's reader) and the
limits a log line's integers keep."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from idstitch.events._canonical import INT_RANGE, canonical_line, dumps, loads


@pytest.mark.parametrize(
    "text",
    [
        '{"seq": 3, "user_id": null, "aliased": true, "undo": ["stamped", "u", null]}',
        '  [1, -2, "\\u00e9", {"a": {}}]\n',
        '"just a string"',
        "-9223372036854775808",
        "1.5e3",
    ],
)
def test_loads_reads_a_document_as_json_does(text: str) -> None:
    """loads gives the value json.loads gives, whitespace around the document allowed."""
    assert json.loads(text) == loads(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "tab\there"}',  # a raw control character inside a string
        '{"a": "line\nend"}',
        '{"a": 1} {"b": 2}',  # two documents
        "",
        "NaN",
    ],
    ids=["raw-tab", "raw-newline", "two-documents", "empty", "nan"],
)
def test_loads_refuses_what_strict_json_refuses(text: str) -> None:
    """A raw control character inside a string, extra data, nothing at all, or NaN: ValueError."""
    with pytest.raises(ValueError, match=r"."):
        loads(text)


@pytest.mark.processes
def test_loads_refuses_bad_json_in_a_process_that_never_imported_json() -> None:
    """Where json.decoder was never imported (a CLI's start), the C scanner cannot raise its
    syntax error itself: loads still raises json's ValueError, never returns a value."""
    text = '{"a" 1}'
    script = (
        "import sys\n"
        "from idstitch.events._canonical import loads\n"
        "imported = 'json.decoder' in sys.modules\n"
        "try:\n"
        "    outcome = repr(loads(sys.argv[1]))\n"
        "except ValueError as exc:\n"
        "    outcome = f'{type(exc).__name__}: {exc}'\n"
        "print(imported, outcome)\n"
    )
    # Without coverage's variables: a measured child would import json before idstitch does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    child = subprocess.run(
        [sys.executable, "-c", script, text],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(text)
    assert f"False JSONDecodeError: {caught.value}\n" == child.stdout


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (INT_RANGE[0], True),
        (INT_RANGE[1], True),
        (INT_RANGE[0] - 1, False),
        (INT_RANGE[1] + 1, False),
        (0, True),
    ],
)
def test_a_lines_integers_stay_within_64_bits(value: int, kept: bool) -> None:
    """A line is canonical with an integer from -2**63 to 2**64-1, orjson's range; one beyond
    is no canonical line (and dumps refuses it)."""
    line = b'{"n":%d}\n' % value
    assert ({"n": value} if kept else None) == canonical_line(line)
    if not kept:
        with pytest.raises(ValueError, match="Integer exceeds 64-bit range"):
            dumps({"n": value})


def test_dumps_keeps_the_keys_in_their_order() -> None:
    """A record's keys are written in the order given (v, seq, at, kind, ...), never sorted."""
    assert b'{"v":1,"seq":2,"at":"x","kind":"clear"}' == dumps(
        {"v": 1, "seq": 2, "at": "x", "kind": "clear"}
    )


def test_a_raw_control_character_is_no_canonical_line() -> None:
    """Strict JSON: a tab written raw inside a string is refused by the line reader too."""
    assert (None, {"a": "t\tb"}) == (
        canonical_line(b'{"a":"t\tb"}\n'),
        canonical_line(b'{"a":"t\\tb"}\n'),
    )
