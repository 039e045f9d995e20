"""``idstitch show`` and ``idstitch doctor``: a state dir, as the service itself answers for it.

Both ask the service rather than re-deriving what it would do.
:func:`idstitch.service.diagnose` (read-only) says whether the dir can be
used at all, whether it is healthy, what is wrong, what a repair would do,
the pending forgettings, the files kept aside and the storage state the
next persistent run opens in. ``show`` adds how a run started now would
open the dir (:func:`idstitch.service.open_report`: its runtime and the
signal behind it, whether the dir holds a state to start from) and the
identity it holds: :meth:`IdentityStitch.open` in the ephemeral runtime,
which reads the dir exactly as a host does and writes nothing (a damaged
dir gives the identity a heal would start from, in memory). File names
come from :mod:`idstitch.store`.

Paths are shown as text that always prints and encodes: a byte of a path
that is not UTF-8 appears as its escape (``\\xe9``).
"""

from __future__ import annotations

import os

from idstitch.events._frozen import Frozen, freeze
from idstitch.store._names import LOG_NAME, SNAPSHOT_NAME

from ._render import Output, Part, printable
from ._source import UnusableInputError

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Final

    from idstitch.delivery import SpoolStatus
    from idstitch.machine import Identity
    from idstitch.service import Diagnosis, OpenReport

__all__ = [
    "StateReport",
    "doctor_json",
    "doctor_report",
    "examine_state_dir",
    "inspect_state_dir",
    "report_json",
    "resolve_state_dir",
    "runtime_words",
    "show_rows",
    "spool_status",
]

_IN_MEMORY = (
    "the next persistent run keeps it aside, unread, and starts a new log (see idstitch doctor)"
)
_W = len("was wrong  ")  # the width of the doctor's row labels


class StateReport(Frozen):
    """What ``show`` prints: the state dir, the identity a run started now holds, how a run
    would open the dir now (runtime, storage), the service's diagnosis and notes
    (``state_dir`` and ``notes`` already made printable), and whether the environment
    opts out (``DO_NOT_TRACK``: it wins over the user's recorded choice)."""

    __slots__ = ("diagnosis", "env_opts_out", "identity", "notes", "opening", "state_dir")
    state_dir: str
    identity: Identity
    opening: OpenReport
    diagnosis: Diagnosis
    notes: tuple[str, ...]
    env_opts_out: bool

    def __init__(
        self,
        *,
        state_dir: str,
        identity: Identity,
        opening: OpenReport,
        diagnosis: Diagnosis,
        notes: tuple[str, ...] = (),
        env_opts_out: bool = False,
    ) -> None:
        freeze(self, locals())


def resolve_state_dir(
    state_dir: str | None, app: str | None, env: Mapping[str, str] = os.environ
) -> str:
    """The state dir named by ``--state-dir`` (or ``DIR``), or ``--app``'s default one."""
    if state_dir is not None:
        return state_dir
    if app is not None:
        from idstitch.service._dirs import default_state_dir

        try:
            return default_state_dir(app, env)
        except ValueError as exc:
            raise UnusableInputError(f"no state: {app} has no default state dir: {exc}") from None
    raise UnusableInputError("a state dir is needed: DIR (--state-dir DIR) or --app NAME")


def examine_state_dir(state_dir: str, *, repair: bool = False, show: bool = False) -> Diagnosis:
    """The service's diagnosis of ``state_dir`` (``repair``: healed first).

    Raises :class:`UnusableInputError` when idstitch would not use the dir
    (for ``show``, the message says there is no state to show).
    """
    from idstitch.service._doctor import CannotExamineError, diagnose

    try:
        return diagnose(state_dir, repair=repair, odd_log=not show)
    except CannotExamineError as exc:
        if exc.kind == "log":
            raise UnusableInputError(f"{'no state: ' * show}{exc}: {_IN_MEMORY}") from None
        if show and exc.kind != "untrusted":
            raise UnusableInputError(f"no state: {exc}") from None
        raise UnusableInputError(str(exc)) from None
    except OSError as exc:  # the dir changed under the diagnosis (or the repair's disk failed)
        raise UnusableInputError(f"cannot examine {state_dir}: {exc}") from None


def inspect_state_dir(state_dir: str, env: Mapping[str, str] = os.environ) -> StateReport:
    """The identity in ``state_dir``, its diagnosis and the runtime detected now.

    Writes nothing. Raises :class:`UnusableInputError` when there is no
    identity to show (the host would mint a new one, or not use the dir).
    """
    from idstitch.service import IdentityStitch, open_report
    from idstitch.service._runtime import Runtime, opted_out_by

    shown = printable(state_dir)
    found = examine_state_dir(state_dir, show=True)
    opening = open_report(state_dir=state_dir, env=env, diagnosis=found)
    if not {LOG_NAME, SNAPSHOT_NAME} & set(opening.files):
        raise UnusableInputError(f"no state: {shown} holds neither {LOG_NAME} nor {SNAPSHOT_NAME}")
    if not opening.holds_state:
        # The host would mint a brand-new device here: there is no identity to show yet.
        raise UnusableInputError(
            f"no state: {shown} holds no identity yet ({SNAPSHOT_NAME} is {found.snapshot}, "
            f"{LOG_NAME} is {'missing' if found.log_bytes is None else 'empty'})"
        )
    stitch = IdentityStitch.open(state_dir=state_dir, runtime=Runtime.EPHEMERAL, env={})
    notes = [*found.problems, *(f"a repair would {step}" for step in found.repair)]
    notes += found.notes
    if found.heal is not None and found.heal["device_id"] is None:
        notes.append(
            "the device id shown stands in for the new one the heal mints (it differs on "
            "every read)"
        )
    if not found.healthy:
        notes.append(f"see `idstitch doctor {state_dir}`")
    return StateReport(
        state_dir=shown,
        identity=stitch.identity,
        opening=opening,
        diagnosis=found,
        notes=tuple(printable(note) for note in notes),
        env_opts_out=opted_out_by(env),
    )


def spool_status(state_dir: str) -> SpoolStatus | None:
    """What the state dir's spool holds (events waiting, dropped, the last sender run);
    ``None`` when the dir has no spool (nothing was ever sent through one)."""
    from idstitch.delivery import SPOOL_FOLDER, read_status

    folder = os.path.join(state_dir, SPOOL_FOLDER)
    return read_status(folder) if os.path.isdir(folder) else None


def report_json(report: StateReport) -> dict[str, Any]:
    """The ``show --json`` object (without the identity fields, added by the caller)."""
    found = report.diagnosis
    return {
        "state_dir": report.state_dir,
        "runtime": report.opening.runtime.value,
        "runtime_signal": report.opening.runtime_signal,
        "telemetry": report.diagnosis.consent,
        "sends": not (report.env_opts_out or report.diagnosis.consent == "disabled"),
        "log_bytes": found.log_bytes,
        "snapshot": found.snapshot,
        "storage": found.storage,
        "healthy": found.healthy,
        "pending": len(found.pending),
        "kept": found.kept,
        "spool": _spool_json(found.state_dir),
        "notes": list(report.notes),
    }


#: How ``show`` words a runtime signal that would not read well alone.
_SIGNAL_WORDS: Final = {"no signal": "no sign of CI, a container or a one-shot runner"}


def runtime_words(opening: OpenReport) -> str:
    """The runtime a run started now would be in, and the signal that decided it:
    ``ephemeral (CI variable GITHUB_ACTIONS)``."""
    signal = opening.runtime_signal
    return f"{opening.runtime.value} ({_SIGNAL_WORDS.get(signal, signal)})"


def telemetry_words(report: StateReport) -> str:
    """Whether a run started now would send, and why: the environment's opt-out wins over
    the user's recorded choice, which wins over the default (on)."""
    consent = report.diagnosis.consent
    if report.env_opts_out:
        return "off (DO_NOT_TRACK is set)"
    if consent == "disabled":
        return "off (the user turned it off)"
    if consent == "enabled":
        return "on (the user turned it on)"
    return "on (no choice recorded: the default)"


def show_rows(report: StateReport) -> list[tuple[str, str]]:
    """The rows ``show`` adds under the identity."""
    found = report.diagnosis
    log = "none" if found.log_bytes is None else f"{LOG_NAME}, {found.log_bytes} bytes"
    rows = [
        ("runtime now", runtime_words(report.opening)),
        ("telemetry", telemetry_words(report)),
        ("log", log),
        ("snapshot", found.snapshot),
        ("next run", found.storage),
        ("health", "healthy" if found.healthy else "needs repair"),
    ]
    if found.pending:
        rows.append(("pending", f"{len(found.pending)} forgetting(s)"))
    if found.kept:
        rows.append(("kept", ", ".join(found.kept)))
    spool = spool_status(found.state_dir)
    if spool is not None:
        rows.append(("spool", spool.summary()))
    return rows


def _spool_json(state_dir: str) -> dict[str, Any] | None:
    spool = spool_status(state_dir)
    return None if spool is None else spool.as_dict()


def doctor_json(found: Diagnosis) -> dict[str, Any]:
    """The ``doctor --json`` object: the diagnosis, its paths made printable."""
    value = found.as_json()
    value["state_dir"] = printable(found.state_dir)
    value["kept"] = [printable(name) for name in found.kept]
    value["pending"] = [
        {**entry, "file": printable(entry["file"] or "")} for entry in found.pending
    ]
    value["spool"] = _spool_json(found.state_dir)
    return value


def doctor_report(found: Diagnosis, out: Output) -> int:
    """Print the diagnosis; 0 healthy (or repaired), 1 needs repair."""
    if out.as_json:
        out.json({"type": "diagnosis", **doctor_json(found)})
        return 0 if found.healthy else 1
    out.lines(_doctor_lines(found))
    return 0 if found.healthy else 1


def _holding_lines(found: Diagnosis) -> Iterable[list[Part]]:
    """The doctor's rows for what the dir holds: the identity, the next run, the spool."""
    if found.identity is not None:
        held = found.identity
        who = held["user_id"] or "no user"
        said = f"{held['state']}, {who}, device {held['device_id']}, seq {held['last_seq']}"
        yield [f"  {'identity':<{_W}}", said]
    yield [f"  {'next run':<{_W}}", f"{found.storage} ({found.storage_reason})"]
    spool = spool_status(found.state_dir)
    if spool is not None:
        yield [f"  {'spool':<{_W}}", spool.summary()]


def _doctor_lines(found: Diagnosis) -> Iterable[list[Part]]:
    verdict: Part
    if found.repaired:
        verdict = ("repaired", "green")
    elif found.healthy:
        verdict = ("healthy", "green")
    else:
        verdict = ("needs repair", "red")
    yield [(found.state_dir, "bold"), ": ", verdict]
    was = "was wrong" if found.repaired else "problem"
    for problem in found.problems:
        yield [f"  {was:<{_W}}", (problem, "red")]
    done = "repaired" if found.repaired else "a repair"
    for step in found.repair:
        yield [f"  {done:<{_W}}", (step, "yellow")]
    for note in found.notes:
        yield [f"  {'note':<{_W}}", note]
    for entry in found.pending:
        device = f" to device {entry['new_device_id']}" if entry["new_device_id"] else ""
        yield [f"  {'pending':<{_W}}", f"{entry['kind']}{device} ({entry['file']})"]
    for name in found.kept:
        path = os.path.join(found.state_dir, name)
        if name.startswith(LOG_NAME):
            how = f"a log as it was: read it with `idstitch replay {path}`"
        else:
            how = "a snapshot (JSON) as it was"
        yield [f"  {'kept':<{_W}}", (name, "cyan"), f": {how}"]
    yield from _holding_lines(found)
    if not found.healthy and found.storage != "read_only":
        yield [f"repair it now: idstitch doctor --repair {found.state_dir}"]
