"""``idstitch doctor``: is a state dir healthy, what is wrong, what a repair would do.

The diagnosis reads only (the dir's names, the checked reader over the
whole log, the snapshot, the pending files) and uses the same verdicts the
service acts on (:mod:`._trust`), so "what a repair would do" is what the
next persistent run, or ``--repair`` now, does. A repair is a persistent
open of the dir that then reads the whole log under the lock, as a host's
run does before its first change: it heals damage (log-format.md,
"Healing") and appends pending forgettings, exactly as that run would.
"""

from __future__ import annotations

import os

from idstitch.store._names import (
    CORRUPT,
    DAMAGED,
    LOG_NAME,
    PRE_IDSTITCH,
    SNAPSHOT_ASIDE,
    SNAPSHOT_NAME,
    kept_name,
    kept_names,
)

from ._files import odd_kind
from ._pending import pending_names, read_pending
from ._trust import fold_noting, foreign_identity, heal_plan, log_damage, snapshot_identity

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import Any

    from idstitch.machine._fold import Identity
    from idstitch.store import SnapshotRead

__all__ = ["CannotExamineError", "Diagnosis", "diagnose", "identity_fields"]

_LOG = LOG_NAME
_SNAPSHOT = SNAPSHOT_NAME


class CannotExamineError(Exception):
    """``state_dir`` is not a state dir idstitch would use (``idstitch doctor`` exits 2).

    ``kind``: ``missing``, ``not-a-dir``, ``untrusted`` (not this user's, or
    writable by others), ``log`` (a log idstitch would not open: a symlink,
    a directory, a FIFO, an unreadable file) or ``unreadable`` (the dir's
    names cannot be listed). ``path`` is the file at fault, ``problem``
    what is wrong with it; the message is both.
    """

    def __init__(self, kind: str, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.kind = kind
        self.path = path
        self.problem = problem


class Diagnosis:
    """What :func:`diagnose` found in one state dir.

    ``healthy``: nothing to repair. ``problems``: what is (or, after a
    repair, was) wrong. ``repair``: what a repair does (or did). ``notes``:
    facts that need no repair (a foreign state file to adopt, a cut-off
    write the next change removes). ``kept``: files kept aside by heals.
    ``pending``: forgettings not yet in the log. ``heal``: the identity a
    heal starts from (``device_id`` ``None``: a new device is minted).
    ``identity``: the trusted identity the dir holds (``None``: none).
    ``storage``: the storage state the next persistent run opens in
    (``healthy``, ``healing`` or ``read_only``), ``storage_reason`` why;
    ``newer``: what a newer build wrote, as the service says it (``None``:
    nothing). ``host_opted_out``: the dir holds only the host's own state
    file, which says telemetry is off (the service takes it as an opt-out).
    ``consent``: the user's telemetry choice the next run finds (the trusted
    identity's, or a pending one's), ``None`` when none was recorded.
    """

    __slots__ = (
        "consent",
        "heal",
        "healthy",
        "host_opted_out",
        "identity",
        "kept",
        "log_bytes",
        "newer",
        "notes",
        "pending",
        "problems",
        "repair",
        "repaired",
        "snapshot",
        "state_dir",
        "storage",
        "storage_reason",
    )

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.healthy = True
        self.repaired = False
        self.storage = "healthy"
        self.storage_reason = "a usable state dir"
        self.problems: list[str] = []
        self.repair: list[str] = []
        self.notes: list[str] = []
        self.kept: list[str] = []
        self.pending: list[dict[str, str | None]] = []
        self.heal: dict[str, str | None] | None = None
        self.identity: dict[str, Any] | None = None
        self.consent: str | None = None
        self.snapshot = "missing"
        self.log_bytes: int | None = None
        self.newer: str | None = None
        self.host_opted_out = False

    def as_json(self) -> dict[str, Any]:
        """The diagnosis as plain JSON values (``idstitch doctor --json``)."""
        return {
            "state_dir": self.state_dir,
            "healthy": self.healthy,
            "repaired": self.repaired,
            "storage": self.storage,
            "storage_reason": self.storage_reason,
            "problems": self.problems,
            "repair": self.repair,
            "notes": self.notes,
            "kept": self.kept,
            "pending": self.pending,
            "heal": self.heal,
            "identity": self.identity,
            "log_bytes": self.log_bytes,
            "snapshot": self.snapshot,
        }


def diagnose(state_dir: str, *, repair: bool = False, odd_log: bool = True) -> Diagnosis:
    """Diagnose ``state_dir``; with ``repair``, heal it now and diagnose it again.

    Reads only, unless ``repair``. Raises :class:`CannotExamineError` when
    it is not a state dir idstitch would use. A link, FIFO or directory in
    place of the log is damage the service heals (kept aside unread); with
    ``odd_log=False`` it is refused instead (``idstitch show`` has nothing
    to show then).
    """
    examine(state_dir, odd_log=odd_log)
    found = _diagnose(state_dir)
    if not repair or found.healthy or found.storage == "read_only":
        return found  # a newer build's files: nothing this build may repair
    from ._runtime import Runtime
    from ._stitch import IdentityStitch
    from ._storage import Storage

    stitch = IdentityStitch.open(state_dir=state_dir, runtime=Runtime.PERSISTENT, env={})
    # A steady open trusts the snapshot; the first change of a run reads the whole log
    # under the lock, heals and applies pending forgettings. check() does that now.
    stitch.check()
    after = _diagnose(state_dir)
    if after.healthy and stitch.storage is Storage.HEALTHY:
        after.repaired = True
        after.problems, after.repair, after.heal = found.problems, found.repair, found.heal
        return after
    after.healthy = False
    after.problems.append(
        f"the repair could not finish: this run's storage is {stitch.storage} "
        f"({stitch.storage_reason})"
    )
    return after


def examine(state_dir: str, *, odd_log: bool = False) -> None:
    """Raise :class:`CannotExamineError` unless ``state_dir`` is a dir idstitch would open
    (``odd_log``: a log that is no regular file counts as damage to heal, not a refusal)."""
    import stat

    from ._dirs import untrusted_reason

    try:
        mode = os.lstat(state_dir).st_mode
    except FileNotFoundError:
        raise CannotExamineError("missing", state_dir, "does not exist") from None
    except OSError as exc:
        raise CannotExamineError("unreadable", state_dir, _cannot(exc)) from None
    if not stat.S_ISDIR(mode) and not stat.S_ISLNK(mode):
        raise CannotExamineError("not-a-dir", state_dir, "is not a directory")
    problem = untrusted_reason(state_dir)
    if problem is not None:
        raise CannotExamineError("untrusted", state_dir, f"is not used by idstitch: {problem}")
    log_path = os.path.join(state_dir, _LOG)
    try:
        mode = os.lstat(log_path).st_mode
        if not stat.S_ISREG(mode):
            if not odd_log:
                raise CannotExamineError("log", log_path, _odd_refusal(mode))
            # else: the service keeps it aside unread and heals; _diagnose says so
        else:
            os.close(os.open(log_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CannotExamineError("log", log_path, _cannot(exc)) from None
    try:
        os.listdir(state_dir)
    except OSError as exc:
        raise CannotExamineError("unreadable", state_dir, _cannot(exc)) from None


def _odd_refusal(mode: int) -> str:
    import stat

    if stat.S_ISLNK(mode):
        return "is a symlink (idstitch never follows one)"
    return "is a directory" if stat.S_ISDIR(mode) else "is not a regular file"


def _cannot(exc: OSError) -> str:
    return f"cannot be read ({exc.strerror or exc})"


def _diagnose(state_dir: str) -> Diagnosis:
    from idstitch.events._errors import LogDamagedError, NewerFormatError
    from idstitch.store._line import LIGHT_READ_BYTES
    from idstitch.store._log import FileLog
    from idstitch.store._snapshot import read_snapshot

    found = Diagnosis(state_dir)
    names = sorted(os.listdir(state_dir))
    found.kept = kept_names(names)
    log_path = os.path.join(state_dir, _LOG)
    found.log_bytes = os.lstat(log_path).st_size if _LOG in names else None
    snapshot = read_snapshot(os.path.join(state_dir, _SNAPSHOT))
    found.snapshot = snapshot.status
    held = snapshot_identity(snapshot)
    if _odd_log(found, log_path, held, names):
        return found
    reader = FileLog(log_path, light=(found.log_bytes or 0) <= LIGHT_READ_BYTES).records()
    result, hashes, devices = fold_noting(reader)
    good, error = result.identity, result.error
    torn = isinstance(error, LogDamagedError) and error.cause == "torn-tail"
    damage: str | None = None
    if snapshot.status == "newer":  # the service reads the snapshot first
        found.newer = snapshot.problem
    elif isinstance(error, NewerFormatError):
        found.newer = str(error)
    if isinstance(error, NewerFormatError):
        _newer(found, f"{_LOG} holds records of a newer idstitch ({error})")
    elif snapshot.status == "newer":
        _newer(found, f"{_SNAPSHOT} was written by a newer idstitch ({snapshot.problem})")
    else:
        damage = log_damage(
            error=error,
            held=held,
            hashes=hashes,
            good=good,
            log_end=reader.checkpoint.offset,
            snapshot=snapshot,
        )
        if damage is not None:
            damage = f"{_LOG} is damaged: {damage}"
    if damage is None and torn:
        found.notes.append(f"{_LOG} ends in a cut-off write: the next change removes it")
    if damage is not None:
        found.problems.append(damage)
        _plan_heal(
            found, log_path, good=good, devices=devices, held=held, end=reader.checkpoint.offset
        )
    elif found.storage != "read_only":
        _check_snapshot(found, snapshot, good, held, hashes)
    trusted = good if held is None or (good is not None and good.seq >= held.seq) else held
    if trusted is not None:
        found.identity = identity_fields(trusted)
        found.consent = trusted.consent
    _check_pending(found, names)
    found.healthy = not found.problems
    return found


def _odd_log(found: Diagnosis, log_path: str, held: Identity | None, names: list[str]) -> bool:
    """A link, FIFO or directory in place of the log: damage the service heals unread."""
    odd = odd_kind(log_path)
    if odd is None:
        return False
    found.problems.append(f"{_LOG} is {odd}, not a regular file")
    _plan_heal(found, log_path, good=None, devices=set(), held=held, end=0)
    _check_pending(found, names)
    found.healthy = False
    return True


def _newer(found: Diagnosis, problem: str) -> None:
    found.problems.append(problem)
    found.repair.append("none: only a newer idstitch may write this dir (this build never will)")
    found.storage, found.storage_reason = (
        "read_only",
        "L8: a newer build's files are never rewritten",
    )


def _plan_heal(
    found: Diagnosis,
    log_path: str,
    *,
    good: Identity | None,
    devices: set[str],
    held: Identity | None,
    end: int,
) -> None:
    """What healing the log would do: the plan the service acts on, in words and as data."""
    from ._files import read_whole

    data = read_whole(log_path)
    plan = heal_plan(good=good, good_devices=devices, held=held, data=data, good_end=end)
    if plan.fresh:
        start = "a new device, no user"
    else:
        start = f"device {plan.device_id}, user {plan.user_id or 'none'}"
        if plan.linked_user:
            start += f", aliased to {plan.linked_user}"
    present = bool(data) or os.path.lexists(log_path)
    steps = [f"keep {_LOG} aside as {_aside(_LOG, DAMAGED)} (byte for byte)"] if present else []
    if found.snapshot != "missing":
        steps.append(f"keep {_SNAPSHOT} aside as {_aside(_SNAPSHOT, DAMAGED)}")
    steps.append(f"start a new log from {plan.source} ({start})")
    found.repair.append("; ".join(steps))
    found.heal = {
        "source": plan.source,
        "device_id": plan.device_id,
        "user_id": plan.user_id,
        "linked_user": plan.linked_user,
    }
    found.storage, found.storage_reason = "healing", "damage: the next persistent run heals it"


def _check_snapshot(
    found: Diagnosis,
    snapshot: SnapshotRead,
    good: Identity | None,
    held: Identity | None,
    hashes: set[str],
) -> None:
    """What the next persistent run does with the snapshot (the log being sound)."""
    status = "corrupt" if snapshot.status == "ok" and held is None else snapshot.status
    if good is None:  # no record yet: the next persistent run writes the first one
        off = snapshot.data.get("enabled") is False  # the host's own file: telemetry is off
        found.host_opted_out = status == "foreign" and found.log_bytes is None and off
        if status == "foreign":
            found.notes.append(_adoption(snapshot))
        elif status == "corrupt":
            found.notes.append(
                f"{_SNAPSHOT} is corrupt ({snapshot.problem or 'no identity'}) and there is "
                f"no log: the next persistent run keeps it as {_aside(_SNAPSHOT, CORRUPT)} "
                "and mints a new device"
            )
        elif found.log_bytes is None and status == "missing":
            found.notes.append("no identity yet: the next persistent run mints a device")
        return
    if status in ("foreign", "corrupt") or (held is not None and held.h not in hashes):
        why = {
            "foreign": "another tool's state file",
            "corrupt": f"corrupt ({snapshot.problem or 'no identity'})",
        }.get(status, "names no record of this log (another log's snapshot)")
        found.problems.append(f"{_SNAPSHOT} is {why}")
        found.repair.append(
            f"keep {_SNAPSHOT} aside as {_aside(_SNAPSHOT, SNAPSHOT_ASIDE[status])} and write "
            "a new one from the log"
        )
    elif status == "missing":
        found.notes.append(f"{_SNAPSHOT} is missing: the next persistent run writes it")


def _adoption(snapshot: SnapshotRead) -> str:
    """What the next persistent run does with another tool's state file (and no log)."""
    if snapshot.data.get("enabled") is False:
        return (
            f'{_SNAPSHOT} is another tool\'s state file that says "enabled": false: the '
            "host's telemetry is off (R14), so nothing is adopted, sent or written"
        )
    adopted = foreign_identity(snapshot)
    if adopted is None:
        return (
            f"{_SNAPSHOT} is another tool's state file without a device id PostHog would "
            f"merge (R13): the next persistent run keeps it as "
            f"{_aside(_SNAPSHOT, PRE_IDSTITCH)} "
            "and mints a new device"
        )
    device, user = adopted
    return (
        f"{_SNAPSHOT} is another tool's state file: the next persistent run adopts it "
        f"(device {device}, user {user or 'none'}) with one import record and keeps it as "
        f"{_aside(_SNAPSHOT, PRE_IDSTITCH)}"
    )


def _check_pending(found: Diagnosis, names: list[str]) -> None:
    waiting = pending_names(names)
    if not waiting:
        return
    entries = read_pending(found.state_dir, waiting)
    for entry in entries:
        if entry.kind == "consent":
            found.consent = entry.telemetry  # the next run applies it first
    found.pending = [
        {"file": entry.name, "kind": entry.kind, "new_device_id": entry.new_device_id}
        for entry in entries
    ]
    if entries:
        found.problems.append(f"{len(entries)} pending forgetting(s) not yet in the log")
        found.repair.append("append the pending forgettings to the log and remove their files")
    unread = sorted(set(waiting) - {entry.name for entry in entries})
    if unread:
        found.notes.append(
            f"not a pending forgetting idstitch can read (left where it is): {', '.join(unread)}"
        )


def _aside(name: str, label: str) -> str:
    """How a report names the file ``name`` kept aside under ``label``: ``<name>.<label>-N``."""
    return kept_name(name, label, "N")


def identity_fields(identity: Identity) -> dict[str, Any]:
    """The identity fields of every JSON report of an identity (``doctor``, ``show``)."""
    return {
        "state": identity.state.value,
        "device_id": identity.device_id,
        "user_id": identity.user_id,
        "distinct_id": identity.distinct_id,
        "linked_user": identity.linked_user,
        "last_seq": identity.seq,
    }
