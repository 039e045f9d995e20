"""The strict read's line patterns never accept what the pydantic models refuse.

The strict reader takes a line on its kind's pattern (``events/_shapes.py``)
and ``orjson``'s reading of it, and gives every other line to the models'
complete validation. Valid lines of every kind are damaged in every way the
patterns have to tell apart (a byte changed, whitespace between tokens, keys
reordered, added, dropped or written twice, values of the wrong type or out
of range, ids too long or placeholders, unicode escapes, a bad hash), and
the strict reader must say exactly what the models alone say: the same
records, the same damage at the same ``seq`` and offset.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idstitch.events import (
    START,
    Checkpoint,
    LogDamagedError,
    RecordReader,
    encode_record,
    record_problem,
)
from idstitch.events._codec import body_hash, check_line
from idstitch.events._kinds import KIND_FIELDS
from idstitch.events._shapes import LINE_SHAPES
from support.reader_oracles import check_strict_read, complete_read, fast_read
from support.strategies import (
    ILLEGAL_ANY_CASE,
    ILLEGAL_EXACT,
    examples,
    record_sequences,
    record_specs,
)

from bench._data import log_records

#: One plain record of every kind: each line must take the fast path.
PLAIN: dict[str, dict[str, object]] = {
    "genesis": {"device_id": "d-1", "runtime": "persistent"},
    "import": {"device_id": "d-1", "user_id": None, "aliased": False},
    "response": {
        "device_id": "d-1",
        "user_id": "alice@example.com",
        "runtime": "ephemeral",
        "pid": 0,
        "alias": True,
    },
    "login": {
        "device_id": "d 1",
        "user_id": "u ",
        "runtime": "persistent",
        "pid": 7,
        "alias": False,
    },
    "enqueue_failure": {"device_id": "d-1", "user_id": "Bob", "pid": 2**40},
    "clear": {"device_id": "x" * 200, "pid": 1},
    "logout": {"device_id": "d-1", "new_device_id": "d-2", "pid": 99},
    "heal": {
        "device_id": "d-1",
        "user_id": "nulls",
        "linked_user": None,
        "kept": "identity.jsonl.damaged-1",
        "pid": 3,
    },
    "alias_dropped": {
        "device_id": "d-1",
        "user_id": "u-9",
        "reason": "refused: HTTP 400",
        "pid": 5,
    },
}
AT = "2026-11-27T17:00:00.000000Z"

#: Bytes a damaged line may hold where another stood: JSON's own, spaces, escapes, non-ASCII.
BYTES = list(b' "\\,:{}[]0159afntuAZ-_./\x00\x1f\x7f\t\xc3\xa9\xff')
#: Values of the wrong type, or of the right one out of range.
ODD_VALUES: list[object] = [
    0,
    -1,
    10**18,
    10**19,
    2**63,
    True,
    False,
    None,
    "",
    " ",
    "1",
    "x" * 199,
    "x" * 200,
    "x" * 201,
    [],
    {},
    "persistent",
    "ephemeral",
    ".",
    "..",
    "a/b",
    "\t",
    "é",
    "\u0085",
    "'quoted'",
    ' "x" ',
    "a\\b",
    "2026-11-27T17:00:00.000000Z",
    "0" * 32,
]
#: User ids R13 refuses, and near misses it takes: any case, padded, quoted.
ID_WORDS = st.one_of(
    st.sampled_from([*ILLEGAL_ANY_CASE, *ILLEGAL_EXACT, "nulls", "ids", "[object Object]"]),
    st.sampled_from(ILLEGAL_ANY_CASE).map(str.upper),
    st.sampled_from(ILLEGAL_EXACT).map(str.upper),
).flatmap(
    lambda word: st.sampled_from(
        [word, f"{word} ", f" {word}", f"'{word}'", f'"{word}"', f"{word}  ", f"{word}\t"]
    )
)
#: Printable ASCII, quotes and backslashes included, up to one character too long.
ASCII_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=202)


def _near(value: object) -> st.SearchStrategy[object]:
    """``value``, or (for text) any printable ASCII, a placeholder, an id at a length bound."""
    if not isinstance(value, str):
        return st.just(value)
    bounds = st.sampled_from(["x" * 200, "x" * 201, " x" * 100, "x" + " " * 199, "   "])
    return st.one_of(st.just(value), ASCII_TEXT, ID_WORDS, bounds)


def plain_specs() -> st.SearchStrategy[list[tuple[str, dict[str, object], str]]]:
    """Logs of plain records (which take the patterns) with their text varied near the edges."""
    specs = st.sampled_from(list(PLAIN)).flatmap(
        lambda kind: st.tuples(
            st.just(kind),
            st.fixed_dictionaries({k: _near(v) for k, v in PLAIN[kind].items()}),
            st.just(AT),
        )
    )
    return st.lists(specs, min_size=1, max_size=4)


FIELDS = sorted({name for fields in KIND_FIELDS.values() for name, _ in fields})
KEYS = ["v", "seq", "at", "kind", "h", *FIELDS, "x"]


def chain(specs: list[tuple[str, dict[str, object], str]]) -> list[bytes]:
    """The lines of a log of ``(kind, fields, at)`` records, hash-linked."""
    lines, after = [], START
    for kind, fields, at in specs:
        line, record = encode_record(after, at=at, kind=kind, fields=fields)
        after = Checkpoint(record["seq"], record["h"], after.offset + len(line))
        lines.append(line)
    return lines


def rechain(lines: list[bytes]) -> bytes:
    """The lines with every hash link recomputed, so that only the other damage remains."""
    prev, out = START.h, []
    for line in lines:
        if line.endswith(b'"}\n') and line[-41:-35] == b',"h":"':
            prev = body_hash(prev, line[:-41] + b"}")
            line = line[:-35] + prev.encode() + b'"}\n'  # noqa: PLW2901 - the relinked line
        out.append(line)
    return b"".join(out)


def pairs_of(line: bytes) -> list[tuple[str, object]]:
    """The key-value pairs of a line, in order."""
    found: list[tuple[str, object]] = json.loads(line, object_pairs_hook=list)
    return found


def encoded(pairs: list[tuple[str, object]]) -> bytes:
    """Pairs written as a compact line (a key may repeat), with its line end."""
    body = b",".join(orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in pairs)
    return b"{" + body + b"}\n"


def damage(line: bytes, data: st.DataObject) -> bytes:
    """``line`` damaged in one of the ways the patterns must tell apart."""
    how = data.draw(
        st.sampled_from(
            [
                "byte",
                "space",
                "reorder",
                "extra",
                "missing",
                "retype",
                "id",
                "escape",
                "twice",
                "number",
            ]
        ),
        label="how",
    )
    pairs = pairs_of(line)
    names = [k for k, _ in pairs]
    if how == "byte":
        at = data.draw(st.integers(0, len(line) - 2), label="at")
        byte = data.draw(st.sampled_from(BYTES), label="byte")
        change = data.draw(st.sampled_from(["replace", "remove", "insert"]), label="change")
        rest = line[at + 1 :] if change != "insert" else line[at:]
        return line[:at] + (b"" if change == "remove" else bytes([byte])) + rest
    if how == "space":
        spots = [i + 1 for i, byte in enumerate(line[:-1]) if byte in b"{,:"]
        spots.append(len(line) - 2)  # before the closing brace
        at = data.draw(st.sampled_from(spots), label="at")
        return line[:at] + data.draw(st.sampled_from([b" ", b"\t", b"\r", b"  "])) + line[at:]
    if how == "reorder":
        i = data.draw(st.integers(0, len(pairs) - 2), label="i")
        pairs[i], pairs[i + 1] = pairs[i + 1], pairs[i]
    elif how == "extra":
        key = data.draw(st.sampled_from(KEYS), label="key")
        at = data.draw(st.integers(0, len(pairs)), label="at")
        pairs.insert(at, (key, data.draw(st.sampled_from(ODD_VALUES), label="value")))
    elif how == "missing":
        del pairs[data.draw(st.integers(0, len(pairs) - 1), label="i")]
    elif how in ("retype", "id", "number"):
        i = data.draw(st.integers(0, len(pairs) - 1), label="i")
        values = {
            "retype": st.sampled_from(ODD_VALUES),
            "id": ID_WORDS,
            "number": st.sampled_from([0, 1, 2, 3, 4, -1, 10**17, 10**18 - 1, 10**18, 2**64 - 1]),
        }[how]
        pairs[i] = (names[i], data.draw(values, label="value"))
    elif how == "escape":
        text = encoded(pairs)
        spots = [i for i, byte in enumerate(text) if 0x20 <= byte < 0x7F and byte not in b'"\\']
        at = data.draw(st.sampled_from(spots), label="at")
        form = data.draw(st.sampled_from(["\\u%04x", "\\u%04X", "\\/"]), label="form")
        escape = (form % text[at] if "%" in form else form).encode()
        return (
            text[:at] + escape + text[at + 1 :] if form != "\\/" else text[:at] + escape + text[at:]
        )
    else:  # twice
        i = data.draw(st.integers(0, len(pairs) - 1), label="i")
        value = data.draw(st.sampled_from([pairs[i][1], *ODD_VALUES[:4]]), label="value")
        pairs.insert(i + data.draw(st.integers(0, 2), label="after"), (names[i], value))
    return encoded(pairs)


def bad_hash(line: bytes, data: st.DataObject) -> bytes:
    """``line`` with its hash field spelled otherwise: upper case, escaped, short, another."""
    h = line[-35:-3]
    other = data.draw(
        st.sampled_from(
            [
                h.upper(),
                h[:31],
                h + b"0",
                b"\\u00" + b"%x" % h[0] + h[1:],
                bytes(reversed(h)),
                h[:-1] + b"g",
            ]
        ),
        label="hash",
    )
    return line[:-35] + other + b'"}\n'


@pytest.mark.parametrize("kind", list(PLAIN))
def test_a_plain_line_of_every_kind_takes_the_pattern(kind: str) -> None:
    """Each kind's plain line matches its pattern, and the models accept it as read."""
    (line,) = chain([(kind, PLAIN[kind], AT)])
    record = orjson.loads(line)
    assert (True, record) == (
        LINE_SHAPES[kind](line) is not None,
        check_line(line, START, validate=record_problem),
    )


def test_every_line_of_the_benchmark_log_takes_the_pattern() -> None:
    """The generated log (the bench's) never needs the models: every line matches its kind."""
    lines = chain([(kind, fields, at) for at, kind, fields in log_records(50)])
    kinds = [orjson.loads(line)["kind"] for line in lines]
    assert [True] * 50 == [
        LINE_SHAPES[k](line) is not None for k, line in zip(kinds, lines, strict=True)
    ]


@settings(max_examples=examples(600), deadline=None)
@given(specs=st.one_of(plain_specs(), record_sequences(max_size=4)), data=st.data())
def test_a_damaged_line_gets_the_models_verdict(
    specs: list[tuple[str, dict[str, object], str]], data: st.DataObject
) -> None:
    """Any damage to any line of a log: the strict read stops where, and as, the models do."""
    lines = chain([(kind, dict(fields), at) for kind, fields, at in specs])
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    lines[i] = damage(lines[i], data)
    damaged = rechain(lines)
    if data.draw(st.booleans(), label="bad hash"):
        relinked = damaged.splitlines(keepends=True)
        if relinked[i].endswith(b'"}\n'):
            relinked[i] = bad_hash(relinked[i], data)
        damaged = b"".join(relinked)
    check_strict_read(damaged)


@settings(max_examples=examples(600), deadline=None)
@given(
    specs=st.one_of(plain_specs(), st.lists(record_specs(), min_size=1, max_size=1)), data=st.data()
)
def test_a_line_the_pattern_takes_the_models_take(
    specs: list[tuple[str, dict[str, object], str]], data: st.DataObject
) -> None:
    """A first line that parses, matches its kind's pattern and holds its link: the models
    accept it, and read the values ``orjson`` read."""
    kind, fields, at = specs[0]
    (line,) = chain([(kind, dict(fields), at)])
    if data.draw(st.booleans(), label="damaged"):
        line = rechain([damage(line, data)])
    try:
        record = orjson.loads(line)
        shape = LINE_SHAPES[record["kind"]]
    except (ValueError, KeyError, TypeError):  # not JSON, no object, no kind of the format
        return
    taken = (
        shape(line) is not None
        and record["seq"] == 1
        and record["h"] == body_hash(START.h, line[:-41] + b"}")
    )
    if taken:
        assert record == check_line(line, START, validate=record_problem)


@pytest.mark.parametrize(
    ("edit", "verdict"),
    [
        ((b'"user_id":"user-0000000"', b'"user_id":"GUEST  "'), "bad-field"),
        ((b'"user_id":"user-0000000"', b'"user_id":"guests"'), None),
        ((b'"user_id":"user-0000000"', b'"user_id":" user-1"'), None),
        ((b'"user_id":"user-0000000"', b'"user_id":"\'user-1"'), None),
        ((b'"device_id":"7d7f', b'"device_id":"\\u00377d7f'), None),
        ((b'"pid":4242', b'"pid":18446744073709551615'), None),
        ((b'"pid":4242', b'"pid":18446744073709551616'), "bad-field"),
        ((b'"h":"', b'"h" :"'), "bad-json"),
    ],
)
def test_lines_at_the_patterns_edges_are_judged_by_the_models(
    edit: tuple[bytes, bytes], verdict: str | None
) -> None:
    """Near misses of a pattern go to the models, which accept or refuse them as always."""
    lines = chain([(kind, fields, at) for at, kind, fields in log_records(8)])
    damaged = rechain((b"".join(lines).replace(*edit, 1)).splitlines(keepends=True))
    assert damaged != b"".join(lines)
    expected = complete_read(damaged, strict=True)
    assert verdict == (expected[1] or (None,))[0]
    check_strict_read(damaged)


@pytest.mark.processes
def test_a_strict_read_of_a_sound_log_leaves_pydantic_unimported(tmp_path: Path) -> None:
    """Every line proven by its pattern: the models (pydantic) are imported only for a line
    that is not, and the read gives the same records either way."""
    lines = chain([(kind, fields, at) for at, kind, fields in log_records(8)])
    odd = rechain(
        b"".join(lines).replace(b'"user-0000000"', b'"us\\u0065r-0000000"', 1).splitlines(True)
    )
    program = (
        "import io, sys\n"
        "from idstitch.events import RecordReader\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "seqs = [r['seq'] for r in RecordReader(lambda: io.BytesIO(data), strict=True)]\n"
        "print(seqs[-1], 'pydantic' in sys.modules)\n"
    )
    found = []
    for name, data in (("sound", b"".join(lines)), ("odd", odd)):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(data)
        done = subprocess.run(
            [sys.executable, "-c", program, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        found.append(done.stdout.split())
    assert [["8", "False"], ["8", "True"]] == found


EDGE_VALUES: list[object] = [
    *ODD_VALUES,
    *(10**n + d for n in (17, 18, 19) for d in (-1, 0)),
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    *(f"{word}{pad}" for word in [*ILLEGAL_ANY_CASE, *ILLEGAL_EXACT] for pad in ("", "  ")),
    *(word.upper() for word in ILLEGAL_ANY_CASE),
    *(f"'{word}'" for word in ("null", "guest ", " Anonymous ", "")),
    "guests",
    "NULL",
    "[object object]",
    "'x",
    "x'",
    'x"',
    " x",
    "x ",
    "x" * 199 + " ",
    " " * 200,
]


def test_every_field_of_every_kind_at_its_edges() -> None:
    """Each field of each kind's plain line set to each edge value (types, ranges, lengths,
    placeholders, quotes, spaces): the strict read agrees with the models on every one."""
    disagreements = []
    for kind, fields in PLAIN.items():
        for name in ("v", "seq", "at", "kind", *fields):
            for value in EDGE_VALUES:
                (line,) = chain([(kind, fields, AT)])
                pairs = [(k, value if k == name else v) for k, v in pairs_of(line)]
                data = rechain([encoded(pairs)])
                expected = complete_read(data, strict=True)
                if expected != fast_read(data, strict=True):
                    disagreements.append((kind, name, value))
    assert [] == disagreements


def test_a_record_the_models_refuse_is_named_as_they_name_it() -> None:
    """A placeholder user id stops the strict read with the models' own words, at its seq."""
    lines = chain([(kind, fields, at) for at, kind, fields in log_records(8)])
    damaged = rechain(
        b"".join(lines).replace(b'"user-0000000"', b'"Anonymous"', 1).splitlines(True)
    )
    with pytest.raises(LogDamagedError) as caught:
        list(RecordReader(lambda: io.BytesIO(damaged), strict=True))
    problem = record_problem(orjson.loads(damaged.splitlines()[1]))
    assert ("bad-field", 2, problem) == (caught.value.cause, caught.value.seq, caught.value.detail)
