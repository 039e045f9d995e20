"""``idstitch show``: the identity a host process would start with, read without writing.

The state dir is opened through :meth:`IdentityStitch.open` itself, in the
ephemeral runtime, which reads a state dir and writes nothing: so ``show``
answers exactly what the host would see, and never changes the files it
inspects. Warnings the service logs while opening (a damaged log, a newer
snapshot) are collected and shown as notes. A log the service would not
open at all (a symlink, a directory, an unreadable file) is no state: the
service would start a new identity in memory, which is nobody's to show.

Paths are shown as text that always prints and encodes: a byte of a path
that is not UTF-8 appears as its escape (``\\xe9``).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from idstitch.adapters.runtime import Runtime, detect_runtime
from idstitch.adapters.sinks import NullSink
from idstitch.machine import Identity, IdentityStitch
from idstitch.service._dirs import default_state_dir, untrusted_reason
from idstitch.store import read_snapshot

from ._render import printable
from ._source import LOG_NAME, UnusableInputError

__all__ = ["StateReport", "inspect_state_dir", "report_json", "resolve_state_dir"]

SNAPSHOT_NAME = "telemetry.json"


@dataclass(slots=True)
class StateReport:
    """What ``show`` prints (``state_dir`` and ``notes`` already made printable)."""

    state_dir: str
    identity: Identity
    runtime: Runtime
    log_bytes: int | None
    snapshot: str
    notes: list[str] = field(default_factory=list)


def resolve_state_dir(
    state_dir: str | None, app: str | None, env: Mapping[str, str] = os.environ
) -> str:
    """The state dir named by ``--state-dir``, or ``--app``'s default one."""
    if state_dir is not None:
        return state_dir
    if app is not None:
        try:
            return default_state_dir(app, env)
        except ValueError as exc:
            raise UnusableInputError(f"no state: {app} has no default state dir: {exc}") from None
    raise UnusableInputError("a state dir is needed: DIR (--state-dir DIR) or --app NAME")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().removeprefix("idstitch: "))


def inspect_state_dir(state_dir: str, env: Mapping[str, str] = os.environ) -> StateReport:
    """The identity in ``state_dir`` and the runtime detected now.

    Raises :class:`UnusableInputError` when there is no usable state there.
    """
    shown = printable(state_dir)
    if not os.path.lexists(state_dir):
        raise UnusableInputError(f"no state: {shown} does not exist")
    problem = untrusted_reason(state_dir)
    if problem is not None:
        raise UnusableInputError(f"{shown} is not used by idstitch: {problem}")
    try:
        names = set(os.listdir(state_dir))
    except OSError as exc:
        raise UnusableInputError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if LOG_NAME not in names and SNAPSHOT_NAME not in names:
        raise UnusableInputError(f"no state: {shown} holds neither {LOG_NAME} nor {SNAPSHOT_NAME}")
    log_path = os.path.join(state_dir, LOG_NAME)
    problem = _unopenable(log_path) if LOG_NAME in names else None
    if problem is not None:
        # The service would fall back to memory with a new device: showing it would invent one.
        raise UnusableInputError(
            f"no state: {printable(log_path)} {problem}: "
            "every host run starts a new identity in memory"
        )
    snapshot = read_snapshot(os.path.join(state_dir, SNAPSHOT_NAME))
    has_records = LOG_NAME in names and os.path.getsize(log_path) > 0
    if not has_records and snapshot.status not in ("ok", "foreign"):
        # The host would mint a brand-new device here: there is no identity to show yet.
        raise UnusableInputError(
            f"no state: {shown} holds no identity yet ({SNAPSHOT_NAME} is {snapshot.status}, "
            f"{LOG_NAME} is {'empty' if LOG_NAME in names else 'missing'})"
        )
    collect = _Collect()
    logger = logging.getLogger("idstitch")
    propagate = logger.propagate
    logger.addHandler(collect)
    logger.propagate = False
    try:
        stitch = IdentityStitch.open(
            state_dir=state_dir, runtime=Runtime.EPHEMERAL, sink=NullSink(), env={}
        )
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate
    log_bytes = os.path.getsize(log_path) if LOG_NAME in names else None
    notes = [printable(message) for message in collect.messages]
    if snapshot.status == "foreign" and not has_records:
        if stitch.opted_out:
            notes.append(
                f'{SNAPSHOT_NAME} is another tool\'s state file that says "enabled": false: '
                "the host's telemetry is off (R14), so nothing is adopted, sent or written"
            )
        elif stitch.device_id == snapshot.data.get("device_id"):
            notes.append(
                f"{SNAPSHOT_NAME} is another tool's state file: the next persistent run "
                "adopts it with one import record"
            )
        else:
            notes.append(
                f"{SNAPSHOT_NAME} is another tool's state file without a device id PostHog "
                f"would merge (R13): the next persistent run keeps it as {SNAPSHOT_NAME}"
                ".pre-idstitch and mints a new device (the device id shown is not that one)"
            )
    elif snapshot.status not in ("ok", "missing"):
        notes.append(f"{SNAPSHOT_NAME} is {snapshot.status}: {snapshot.problem}")
    return StateReport(
        state_dir=shown,
        identity=stitch.identity,
        runtime=detect_runtime(env=env, has_state=True),
        log_bytes=log_bytes,
        snapshot=snapshot.status,
        notes=notes,
    )


def _unopenable(log_path: str) -> str | None:
    """Why the service would not open the log at ``log_path`` (it exists), or ``None``.

    It never follows a symlink in place of the log and reads only a regular file.
    """
    try:
        mode = os.lstat(log_path).st_mode
        if stat.S_ISLNK(mode):
            return "is a symlink (idstitch never follows one)"
        if stat.S_ISDIR(mode):
            return "is a directory"
        if not stat.S_ISREG(mode):
            return "is not a regular file"
        os.close(os.open(log_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


def report_json(report: StateReport) -> dict[str, Any]:
    """The ``show --json`` object (without the identity fields, added by the caller)."""
    return {
        "state_dir": report.state_dir,
        "runtime": report.runtime.value,
        "log_bytes": report.log_bytes,
        "snapshot": report.snapshot,
        "notes": report.notes,
    }
