"""The docs hold real data: the worked example of docs/log-format.md reads back through the code."""

from __future__ import annotations

import hashlib
import io
import re

from idstitch.audit._verify import INVARIANTS
from idstitch.events import KINDS, START, Record, RecordReader, encode_record
from idstitch.events._kinds import ZERO_HASH, line_keys
from idstitch.machine import replay
from support import REPO
from support.helpers import checkpoint_after, split_lines

DOCS = REPO / "docs"
LOG_FORMAT = DOCS / "log-format.md"

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def fenced_blocks(text: str, lang: str) -> list[str]:
    """The contents of every fenced block tagged ``lang``, in order."""
    return [m["body"] for m in _FENCE.finditer(text) if m["lang"] == lang]


def example_log() -> bytes:
    """The worked example's lines, exactly as the doc shows them."""
    (block,) = fenced_blocks(LOG_FORMAT.read_text(encoding="utf-8"), "jsonl")
    return block.encode("utf-8")


def test_the_worked_example_is_a_valid_log() -> None:
    """The doc's example reads clean through the strict reader: genesis, response, logout, login."""
    data = example_log()
    reader = RecordReader(lambda: io.BytesIO(data), strict=True)
    records = list(reader)
    expected_kinds = ["genesis", "response", "logout", "login"]
    assert expected_kinds == [r["kind"] for r in records]
    assert checkpoint_after(split_lines(data), records, len(records)) == reader.checkpoint
    assert [list(line_keys(r["kind"])) for r in records] == [list(r) for r in records]


def test_the_worked_example_is_what_the_writer_writes() -> None:
    """Re-encoding each example record from its fields gives back the doc's exact line."""
    data = example_log()
    lines = split_lines(data)
    records: list[Record] = list(RecordReader(lambda: io.BytesIO(data)))
    after = START
    for count, (line, record) in enumerate(zip(lines, records, strict=True), start=1):
        fields = {key: record[key] for key in line_keys(record["kind"])[4:-1]}
        written, _ = encode_record(after, at=record["at"], kind=record["kind"], fields=fields)
        assert line == written
        after = checkpoint_after(lines, records, count)


def test_the_hand_computed_first_link_is_right() -> None:
    """The doc's `body` of record 1 is that line minus its h, and hashing it gives the shown h."""
    text = LOG_FORMAT.read_text(encoding="utf-8")
    first = split_lines(example_log())[0]
    (body_block,) = fenced_blocks(text, "text")
    body = body_block.strip().encode("utf-8")
    assert first[: first.rindex(b',"h":"')] + b"}" == body
    h = hashlib.blake2b(ZERO_HASH.encode("ascii") + body, digest_size=16).hexdigest()
    (python_block,) = fenced_blocks(text, "python")
    assert f'"h":"{h}"' in first.decode()
    assert f"# {h}" == python_block.strip().splitlines()[-1]


def test_the_doc_names_every_kind_and_invariant() -> None:
    """Each record kind and each invariant verify checks (L1..L9) has its entry in the doc."""
    text = LOG_FORMAT.read_text(encoding="utf-8")
    kinds_in_table = re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE)
    assert list(KINDS) == kinds_in_table
    invariants = re.findall(r"^- \*\*(L\d)\*\*", text, re.MULTILINE)
    assert [f"L{i}" for i in range(1, 10)] == invariants
    assert [rule for rule in INVARIANTS if rule.startswith("L")] == invariants


def test_the_drop_example_follows_the_worked_examples_alias() -> None:
    """The doc's alias_dropped line is what the writer writes after records 1-2 of the worked
    example, reads strictly, and takes back exactly the alias of record 2."""
    text = LOG_FORMAT.read_text(encoding="utf-8")
    (drop,) = [b for b in fenced_blocks(text, "json") if '"kind":"alias_dropped"' in b]
    lines = split_lines(example_log())
    head = b"".join(lines[:2])
    records = list(RecordReader(lambda: io.BytesIO(head + drop.encode()), strict=True))
    fields = {key: records[2][key] for key in line_keys("alias_dropped")[4:-1]}
    after = checkpoint_after(lines, records, 2)
    written, _ = encode_record(after, at=records[2]["at"], kind="alias_dropped", fields=fields)
    aliased = records[1]
    assert (drop.encode(), 3) == (written, records[2]["v"])
    assert (aliased["device_id"], aliased["user_id"], True) == (
        fields["device_id"],
        fields["user_id"],
        aliased["alias"],
    )
    assert {} == replay(records).aliases
