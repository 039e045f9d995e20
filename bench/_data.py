"""The benchmark's data: a valid identity log of any length, and state dirs built on it.

The log is written with the library's own writer (:func:`encode_record`),
chained record after record into one file: the bytes are exactly those a
:class:`~idstitch.store.FileLog` would append for the same records (a test
holds the two together), only without the lock, the tail check, the
record check and the fsync of each append. Every record is valid
under ``--strict``.

The records repeat one cycle of seven that visits every user-event guard,
the alias undo and the logout rotation, so a replay takes every kind of
edge of the table::

    response [first] -> enqueue_failure [was_...] -> response [first]
    -> login [other] -> clear -> response [linked] -> logout
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from idstitch.events import START, Checkpoint, encode_record
from idstitch.store import LOG_NAME

__all__ = [
    "GENESIS_DEVICE",
    "STEADY_USER",
    "cached_log",
    "log_records",
    "make_state_dir",
    "write_log",
]

#: The device the generated log starts with.
GENESIS_DEVICE = "7d7f7f7f-0000-4000-8000-000000000001"
#: The user a generated state dir ends with (stamped or aliased), observed again at start-up.
STEADY_USER = "user-steady"
#: Bumped whenever the records generated for a given length change.
_GENERATOR_VERSION = 1


def _at(seq: int) -> str:
    """A distinct, increasing record time: one millisecond per record."""
    ms = seq
    return (
        f"2026-11-{27 + ms // 86_400_000:02d}T{ms // 3_600_000 % 24:02d}:"
        f"{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000 * 1000:06d}Z"
    )


def _device(cycle: int) -> str:
    return f"{cycle:08x}-0000-4000-8000-{cycle:012x}"


def _cycle(cycle: int, device: str) -> list[tuple[str, dict[str, object]]]:
    user, other = f"user-{cycle:07d}", f"user-{cycle:07d}-b"
    return [
        ("response", _user_fields(device, user, alias=True)),
        ("enqueue_failure", {"device_id": device, "user_id": user, "pid": 4242}),
        ("response", _user_fields(device, user, alias=True)),
        ("login", _user_fields(device, other, alias=False)),
        ("clear", {"device_id": device, "pid": 4243}),
        ("response", _user_fields(device, user, alias=False)),
        ("logout", {"device_id": device, "new_device_id": _device(cycle + 1), "pid": 4244}),
    ]


def _user_fields(device: str, user: str, *, alias: bool) -> dict[str, object]:
    return {
        "device_id": device,
        "user_id": user,
        "runtime": "persistent",
        "pid": 4242,
        "alias": alias,
    }


def log_records(count: int) -> Iterator[tuple[str, str, dict[str, object]]]:
    """``(at, kind, fields)`` of the first ``count`` records of the generated log."""
    if count <= 0:
        return
    yield _at(1), "genesis", {"device_id": GENESIS_DEVICE, "runtime": "persistent"}
    seq, cycle, device = 1, 0, GENESIS_DEVICE
    while True:
        for kind, fields in _cycle(cycle, device):
            if seq >= count:
                return
            seq += 1
            yield _at(seq), kind, fields
        cycle += 1
        device = _device(cycle)


def write_log(path: Path, count: int) -> Checkpoint:
    """Write the ``count``-record log to ``path`` (replacing it); return its end."""
    after = START
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    chunk: list[bytes] = []
    with tmp.open("wb") as out:
        for at, kind, fields in log_records(count):
            line, record = encode_record(after, at=at, kind=kind, fields=fields)
            chunk.append(line)
            after = Checkpoint(record["seq"], record["h"], after.offset + len(line))
            if len(chunk) >= 10_000:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))
    tmp.replace(path)
    return after


def _fingerprint() -> str:
    """Changes when the generator or the library's encoding of its records changes."""
    digest = hashlib.blake2b(str(_GENERATOR_VERSION).encode(), digest_size=6)
    after = START
    for at, kind, fields in log_records(8):
        line, record = encode_record(after, at=at, kind=kind, fields=fields)
        after = Checkpoint(record["seq"], record["h"], after.offset + len(line))
        digest.update(line)
    return digest.hexdigest()


def cached_log(data_dir: Path, count: int) -> Path:
    """The ``count``-record log, generated once into ``data_dir`` and reused after."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"log-{count}-{_fingerprint()}.jsonl"
    if not path.exists():
        for stale in data_dir.glob(f"log-{count}-*.jsonl"):
            stale.unlink()
        write_log(path, count)
    return path


def make_state_dir(folder: Path, log: Path, count: int) -> None:
    """A steady state dir of ``count`` records: the log's first ``count - 1``, then one alias.

    The service replays the copied log and writes its snapshot; observing
    :data:`STEADY_USER` then appends the last record, so that observing
    the same user again is the steady state.
    """
    from idstitch.machine import IdentityStitch

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / LOG_NAME
    remaining = _prefix_size(log, count - 1)
    with log.open("rb") as src, target.open("wb") as dst:
        while remaining:
            block = src.read(min(remaining, 1 << 20))
            dst.write(block)
            remaining -= len(block)
    target.chmod(0o600)
    stitch = IdentityStitch.open(state_dir=folder, runtime="persistent", env={})
    stitch.observe_authenticated_response(STEADY_USER)
    if stitch.identity.seq != count:
        raise RuntimeError(
            f"the state dir {folder} holds {stitch.identity.seq} records, not {count}"
        )


def _prefix_size(log: Path, records: int) -> int:
    """The byte length of the first ``records`` lines of ``log``."""
    size = 0
    with log.open("rb") as f:
        for _, line in zip(range(records), f, strict=False):
            size += len(line)
    return size
