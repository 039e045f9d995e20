"""Pending forgettings: a logout or clear that could not wait for the lock (rule R16).

A telemetry choice (a ``consent``) that could not be appended is kept the
same way, so that a ``disable`` is never lost either.

When another process holds the state dir's lock past the wait (it is
busy, or stopped with Ctrl-Z in the middle of a change), a logout must
still be durable when it returns. It is written to a file of its own,
``identity.pending-<token>``, published whole by the store
(:func:`idstitch.store.publish`: a temporary file, fsynced, renamed into
place, the directory fsynced). One file per forgetting, so writers never
share a file and a reader never sees half of one. Every process that
opens the state dir applies the pending files it finds to the identity it
starts from (in memory if it cannot write); the next holder of the lock
appends them to the log as ordinary ``logout`` / ``clear`` records and
only then removes them. A pending logout carries its new device id, so
every process that applies it rotates to the same device, and one the
log already holds is not applied twice (L5).
"""

from __future__ import annotations

import os

from idstitch.events._kinds import CONSENTS
from idstitch.events._voice import debug
from idstitch.machine._table import FORGETTINGS
from idstitch.store._fs import fsync_dir, open_file
from idstitch.store._names import pending_name, pending_names

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Pending", "pending_names", "read_pending", "remove_pending", "write_pending"]

_MAX_BYTES = 4096


class Pending:
    """One pending change: ``kind`` (``logout``/``clear``/``consent``), the new device of a
    logout, the choice of a consent (``telemetry``), when it was asked for and the file that
    holds it."""

    __slots__ = ("at", "kind", "name", "new_device_id", "telemetry")

    def __init__(
        self,
        *,
        kind: str,
        new_device_id: str | None,
        at: str,
        name: str,
        telemetry: str | None = None,
    ) -> None:
        self.kind = kind
        self.new_device_id = new_device_id
        self.at = at
        self.name = name
        self.telemetry = telemetry

    def __repr__(self) -> str:
        return f"Pending({self.kind}, {self.new_device_id!r}, at={self.at!r}, name={self.name!r})"


def write_pending(
    folder: str, *, kind: str, new_device_id: str | None, at: str, telemetry: str | None = None
) -> str:
    """Write one pending change durably; return its file name. Raises ``OSError``."""
    import json
    import secrets

    from idstitch.store._files import publish

    entry: dict[str, Any] = {"kind": kind, "new_device_id": new_device_id, "at": at}
    if telemetry is not None:
        entry["telemetry"] = telemetry
    name = pending_name(f"{at.replace(':', '').replace('-', '')}-{secrets.token_hex(8)}")
    publish(folder, name, json.dumps(entry).encode())
    return name


def read_pending(folder: str, names: list[str]) -> list[Pending]:
    """The pending forgettings in ``names`` (from :func:`pending_names`), oldest first.

    A file that cannot be read or is not a pending forgetting is skipped
    (left where it is for ``idstitch doctor`` to report); never raises.
    """
    from idstitch.events._ids import check_device_id

    found: list[Pending] = []
    for name in names:
        entry = _load(os.path.join(folder, name))
        if entry is None:
            continue
        kind, new_device, at = entry.get("kind"), entry.get("new_device_id"), entry.get("at")
        telemetry = entry.get("telemetry")
        if kind not in (*FORGETTINGS, "consent") or not isinstance(at, str):
            continue
        if kind == "consent" and telemetry not in CONSENTS:
            continue
        if kind == "logout":
            try:
                check_device_id(new_device)
            except (TypeError, ValueError):
                continue
        found.append(
            Pending(
                kind=str(kind),
                new_device_id=new_device,
                at=at,
                name=name,
                telemetry=telemetry if kind == "consent" else None,
            )
        )
    found.sort(key=lambda pending: (pending.at, pending.name))
    return found


def remove_pending(folder: str, pendings: list[Pending]) -> None:
    """Remove applied pending files (under the lock, after their records were appended)."""
    for pending in pendings:
        _remove(os.path.join(folder, pending.name))
    if pendings:
        import contextlib

        # The records are in the log: a file seen again is not applied twice (see module).
        with contextlib.suppress(OSError):
            fsync_dir(folder)


def _load(path: str) -> dict[str, Any] | None:
    import json

    try:
        fd = open_file(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, _MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > _MAX_BYTES:
        return None
    try:
        entry = json.loads(data)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        debug("idstitch.service", "idstitch: could not remove %s (%r)", path, exc)
