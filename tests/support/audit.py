"""Helpers for the audit tool's tests: run the console script, write logs by hand.

It holds no tests; its name keeps it among the audit's test files. Hand-made
logs are chained with the codec's own ``encode_record``, so their hashes
are valid while their meaning is whatever the test needs, including what
the library would never write.
"""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import subprocess
import sysconfig
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from idstitch.events import START, Checkpoint, LogDamagedError, Record, RecordReader, encode_record

from support.helpers import forge_line

__all__ = [
    "D1",
    "D2",
    "D3",
    "Result",
    "Spec",
    "alias",
    "all_hold",
    "clear",
    "damage_of",
    "dropped",
    "enqueue_failure",
    "genesis",
    "healed",
    "idstitch",
    "imported",
    "in_process",
    "json_lines",
    "logout",
    "on_terminal",
    "script",
    "stamp",
    "write_lines",
    "write_log",
]

#: Fixed device ids for hand-made logs.
D1 = "11111111-1111-4111-8111-111111111111"
D2 = "22222222-2222-4222-8222-222222222222"
D3 = "33333333-3333-4333-8333-333333333333"

#: A hand-made record: its kind and fields.
Spec = tuple[str, dict[str, object]]

_SCRIPT = shutil.which("idstitch", path=sysconfig.get_path("scripts"))


class Result(NamedTuple):
    """What one run of the console script did."""

    code: int
    stdout: str
    stderr: str


def script() -> str:
    """The path of the installed ``idstitch`` console script."""
    assert _SCRIPT is not None, "the idstitch console script is not installed"
    return _SCRIPT


def idstitch(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> Result:
    """Run the installed ``idstitch`` console script with ``args``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IDSTITCH_")}
    environ.update(env or {})
    done = subprocess.run(
        [script(), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=environ,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def on_terminal(
    args: list[str], stream: str, env: dict[str, str], tool: Sequence[str] | None = None
) -> tuple[int, bytes, bytes]:
    """Run ``idstitch args`` with ``stream`` (stdout or stderr) on a pseudo-terminal.

    ``tool``: the command that stands for ``idstitch`` (default: the console script).
    Returns the exit code, what the terminal showed and what the other stream (a pipe) got.
    Both are read while the command runs, so neither can fill up and stall it.
    """
    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IDSTITCH_")}
    environ.update(env)
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: follower}
    shown: list[bytes] = []
    with subprocess.Popen(
        [*(tool or [script()]), *args],
        stdout=streams["stdout"],
        stderr=streams["stderr"],
        env=environ,
    ) as process:
        os.close(follower)
        reader = threading.Thread(target=lambda: shown.append(_read_until_closed(leader)))
        reader.start()
        other = process.stderr if stream == "stdout" else process.stdout
        piped = other.read() if other is not None else b""
        code = process.wait(timeout=60)
        reader.join(timeout=60)
    os.close(leader)
    return code, b"".join(shown), piped


def _read_until_closed(leader: int) -> bytes:
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer of the terminal has gone
            break
        if not chunk:
            break
        seen += chunk
    return seen


def in_process(*args: str) -> Result:
    """Run ``idstitch`` with ``args`` in this process (its ``main``), output captured.

    The same entry point as the console script, measured by coverage; tests that
    prove the installed script itself use :func:`idstitch`.
    """
    import contextlib
    import io

    from idstitch.audit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's usage errors and --help
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object."""
    return [json.loads(line) for line in text.splitlines()]


def genesis(device: str = D1, runtime: str = "persistent") -> Spec:
    """A genesis record's spec."""
    return ("genesis", {"device_id": device, "runtime": runtime})


def alias(
    user: str, device: str = D1, *, kind: str = "response", runtime: str = "persistent"
) -> Spec:
    """A response (or login) that aliased ``device`` to ``user``."""
    fields = {"device_id": device, "user_id": user, "runtime": runtime, "pid": 7, "alias": True}
    return (kind, fields)


def stamp(user: str, device: str = D1, *, kind: str = "response") -> Spec:
    """A response (or login) that stamped ``user`` without an alias."""
    fields = {"device_id": device, "user_id": user, "runtime": "persistent", "pid": 7}
    return (kind, {**fields, "alias": False})


def enqueue_failure(user: str, device: str = D1) -> Spec:
    """The alias just recorded could not be queued."""
    return ("enqueue_failure", {"device_id": device, "user_id": user, "pid": 7})


def clear(device: str = D1) -> Spec:
    """A transient failure forgot the user."""
    return ("clear", {"device_id": device, "pid": 7})


def logout(device: str, new_device: str) -> Spec:
    """A logout from ``device`` to ``new_device``."""
    return ("logout", {"device_id": device, "new_device_id": new_device, "pid": 7})


def imported(device: str, user: str | None, *, aliased: bool) -> Spec:
    """An import of a foreign state file."""
    return ("import", {"device_id": device, "user_id": user, "aliased": aliased})


def healed(
    device: str = D1,
    user: str | None = None,
    linked: str | None = None,
    *,
    kept: str = "identity.jsonl.damaged-1",
) -> Spec:
    """A heal: ``device`` carried into a new log, with its user and whom it was aliased to."""
    fields = {"device_id": device, "user_id": user, "linked_user": linked, "kept": kept}
    return ("heal", {**fields, "pid": 7})


def dropped(user: str, device: str = D1, *, reason: str = "expired") -> Spec:
    """The sender finally dropped the alias of ``device`` to ``user``."""
    return ("alias_dropped", {"device_id": device, "user_id": user, "reason": reason, "pid": 8})


def write_log(path: Path, specs: Sequence[Spec], *, skip_seq_after: int | None = None) -> bytes:
    """Write ``specs`` as a hash-chained log at ``path``; return its bytes.

    ``skip_seq_after``: the record after that seq gets a seq one too high
    (its hash still chains correctly), making a gap in seq.
    """
    after = START
    lines = []
    for index, (kind, fields) in enumerate(specs):
        at = f"2026-11-27T17:00:{index:02d}.000000Z"
        start = after
        if skip_seq_after is not None and after.seq == skip_seq_after:
            start = Checkpoint(after.seq + 1, after.h, after.offset)
        line, record = encode_record(start, at=at, kind=kind, fields=fields)
        lines.append(line)
        after = Checkpoint(record["seq"], record["h"], after.offset + len(line))
    data = b"".join(lines)
    path.write_bytes(data)
    return data


def write_lines(path: Path, specs: Sequence[Spec], extra: Mapping[str, object]) -> bytes:
    """Write ``specs``, then one forged record ``extra`` (keys in order, hash chained)."""
    data = write_log(path, specs)
    records = list(RecordReader(lambda: io.BytesIO(data)))
    prev_h = records[-1]["h"] if records else "0" * 32
    data += forge_line(extra, prev_h)
    path.write_bytes(data)
    return data


def damage_of(data: bytes) -> tuple[list[Record], LogDamagedError | None]:
    """What the library's own checked reader makes of ``data``: its records and its damage."""
    records: list[Record] = []
    try:
        records.extend(RecordReader(lambda: io.BytesIO(data)))
    except LogDamagedError as exc:
        return records, exc
    return records, None


def all_hold(records: int) -> str:
    """What ``idstitch verify`` prints for a log of ``records`` records keeping every promise."""
    from idstitch.audit import INVARIANTS

    listed = "".join(f"  {rule:<3} {words}\n" for rule, words in INVARIANTS.items())
    return f"ok: every promise below holds over {records} records.\n{listed}"
