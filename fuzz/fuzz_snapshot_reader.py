"""Coverage-guided fuzzing of the snapshot reader: `make fuzz` (needs the `fuzz` extra: atheris).

    python fuzz/fuzz_snapshot_reader.py CORPUS_DIR fuzz/seeds/snapshot -max_total_time=60

Every input is written as ``telemetry.json`` in a private temporary dir and
read back with the same oracles the hypothesis properties use
(``tests/support/reader_oracles.py``): never an exception, agreement with the
standard library's JSON parser, the size limit, the identity check.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

with atheris.instrument_imports(include=["idstitch", "support.reader_oracles"]):
    from idstitch.store import SNAPSHOT_NAME
    from support.reader_oracles import check_snapshot_bytes

_FOLDER = tempfile.mkdtemp(prefix="idstitch-fuzz-")
_PATH = os.path.join(_FOLDER, SNAPSHOT_NAME)


def test_one_input(data: bytes) -> None:
    """One fuzz input: any bytes as a snapshot file."""
    check_snapshot_bytes(data, _PATH)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
