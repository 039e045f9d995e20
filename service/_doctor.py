"""``idstitch doctor``: is a state dir healthy, what is wrong, what a repair would do.

The diagnosis reads only (the checked reader over the whole log, the
snapshot, the dir's names) and uses the same verdicts the service acts on
(:mod:`._trust`), so "what a repair would do" is what the next persistent
run, or ``--repair`` now, does: a repair is simply a persistent open of
the dir, which heals it under the lock exactly as a host's run would.
"""

from __future__ import annotations

import os

from ._pending import PENDING_PREFIX, pending_names
from ._trust import heal_plan, lost_records, snapshot_identity

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import Any

    from idstitch.machine._fold import Identity

__all__ = ["Diagnosis", "diagnose"]

_LOG = "identity.jsonl"
_SNAPSHOT = "telemetry.json"


class Diagnosis:
    """What :func:`diagnose` found in one state dir.

    ``healthy``: nothing to repair. ``problems``: what is wrong, in words.
    ``repair``: what a repair does (empty when healthy). ``kept``: files
    kept aside by earlier heals (or by this repair). ``pending``: pending
    forgettings not yet in the log. ``repaired``: a repair ran and the dir
    is healthy now. ``identity``: the identity the dir gives (after the
    repair, if one ran).
    """

    __slots__ = ("identity", "kept", "pending", "problems", "repair", "repaired", "state_dir")

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.problems: list[str] = []
        self.repair: list[str] = []
        self.kept: list[str] = []
        self.pending = 0
        self.repaired = False
        self.identity: dict[str, Any] = {}

    @property
    def healthy(self) -> bool:
        """Whether nothing needs repairing."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The diagnosis as plain JSON values (``idstitch doctor --json``)."""
        return {
            "state_dir": self.state_dir,
            "healthy": self.healthy,
            "repaired": self.repaired,
            "problems": self.problems,
            "repair": self.repair,
            "kept": self.kept,
            "pending": self.pending,
            "identity": self.identity,
        }


def diagnose(state_dir: str, *, repair: bool = False) -> Diagnosis:
    """Diagnose ``state_dir``; with ``repair``, heal it now and diagnose it again.

    Raises ``FileNotFoundError`` / ``NotADirectoryError`` when it is not a
    state dir, and ``PermissionError`` when it is not this user's to use.
    """
    from ._dirs import untrusted_reason

    if not os.path.isdir(state_dir):
        raise NotADirectoryError(f"{state_dir} is not a directory")
    problem = untrusted_reason(state_dir)
    if problem is not None:
        raise PermissionError(f"{state_dir}: {problem}")
    found = _diagnose(state_dir)
    if not repair or found.healthy:
        return found
    from ._runtime import Runtime
    from ._stitch import IdentityStitch

    stitch = IdentityStitch.open(state_dir=state_dir, runtime=Runtime.PERSISTENT, env={})
    after = _diagnose(state_dir)
    after.repaired = after.healthy and stitch.persisting
    after.repair = found.repair
    if not after.healthy:
        after.problems = [*after.problems, f"the repair left the dir {stitch.storage}"]
    return after


def _diagnose(state_dir: str) -> Diagnosis:
    from idstitch.machine._fold import fold
    from idstitch.store._log import FileLog
    from idstitch.store._snapshot import read_snapshot

    found = Diagnosis(state_dir)
    names = sorted(os.listdir(state_dir))
    found.kept = [name for name in names if ".damaged-" in name or ".corrupt" in name]
    log_path = os.path.join(state_dir, _LOG)
    snapshot = read_snapshot(os.path.join(state_dir, _SNAPSHOT))
    held = snapshot_identity(snapshot)
    hashes: set[str] = set()
    devices: set[str] = set()
    reader = FileLog(log_path).records()

    def noting() -> Any:  # noqa: ANN401 - a generator of records
        for record in reader:
            hashes.add(record["h"])
            devices.update(record[k] for k in ("device_id", "new_device_id") if k in record)
            yield record

    try:
        result = fold(noting())
    except FileNotFoundError:
        result = fold(())
    good = result.identity
    error = result.error
    torn = error is not None and getattr(error, "cause", None) == "torn-tail"
    newer = error is not None and getattr(error, "cause", None) == "newer-version"
    good_seq = 0 if good is None else good.seq
    if newer:
        found.problems.append(f"{_LOG} holds records of a newer idstitch ({error})")
    elif error is not None and not torn:
        found.problems.append(f"{_LOG} is damaged: {error}")
    elif held is not None and lost_records(
        held, hashes, good_seq, reader.checkpoint.offset, snapshot
    ):
        found.problems.append(
            f"{_SNAPSHOT} names seq {held.seq}, past the log's last record (seq {good_seq})"
        )
    elif torn and (held is None or held.h not in hashes):
        found.problems.append(
            f"{_LOG} ends in a cut-off record and no snapshot names one before it"
        )
    if found.problems and not newer:
        found.repair.append(_heal_step(log_path, good, devices, held, reader.checkpoint.offset))
    elif newer:
        found.repair.append(
            "none: a newer idstitch must read this dir (this build never rewrites it)"
        )
    if torn and not found.problems:
        found.repair.append(f"the next change removes the cut-off write at the end of {_LOG}")
    waiting = pending_names(names)
    found.pending = len(waiting)
    if waiting:
        found.problems.append(f"{len(waiting)} pending forgetting(s) not yet in the log")
        found.repair.append(f"append the pending forgettings ({PENDING_PREFIX}*) to the log")
    if snapshot.status in ("corrupt", "foreign") and good is not None:
        found.problems.append(f"{_SNAPSHOT} is {snapshot.status}: {snapshot.problem or 'not ours'}")
        found.repair.append(f"keep {_SNAPSHOT} aside and write a new one from the log")
    identity = good if held is None or (good is not None and good.seq >= held.seq) else held
    if identity is not None:
        found.identity = {**identity.as_dict(), "distinct_id": identity.distinct_id}
    return found


def _heal_step(
    log_path: str, good: Identity | None, devices: set[str], held: Identity | None, end: int
) -> str:
    """What healing the log would do, in words (the plan the service would act on)."""
    try:
        with open(log_path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        data = b""
    plan = heal_plan(good=good, good_devices=devices, held=held, data=data, good_end=end)
    if plan.fresh:
        start = "a new device, no user"
    else:
        start = f"device {plan.device_id}, user {plan.user_id or 'none'}"
        if plan.linked_user:
            start += f", aliased to {plan.linked_user}"
    return (
        f"keep {_LOG} aside as {_LOG}.damaged-N (byte for byte) and start a new log from "
        f"{plan.source}: {start}"
    )
