"""Coverage-guided fuzzing of the log reader: `make fuzz` (needs the `fuzz` extra: atheris).

    python fuzz/fuzz_log_reader.py CORPUS_DIR fuzz/seeds/log -max_total_time=60

Every input goes through the checked and strict readers, replay and the
append-side tail check, with the same oracles the hypothesis properties
use (``tests/support/reader_oracles.py``); the strict reader (a line's pattern,
else the pydantic models) is also compared with the models judging every
line alone: the same records, and the same damage at the same ``seq``. A
failing oracle or any unexpected exception is a crash that libFuzzer
reports and saves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

with atheris.instrument_imports(include=["idstitch", "support.reader_oracles"]):
    from support.reader_oracles import check_log_bytes, check_strict_read


def test_one_input(data: bytes) -> None:
    """One fuzz input: any bytes as a log."""
    check_log_bytes(data)
    check_strict_read(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
