"""How :meth:`IdentityStitch.open` would open a state dir, as a structured report.

The audit tool (``idstitch show``, ``idstitch doctor``) asks this rather
than working out for itself what the service decides, or reading the
service's log messages. The report is made of the decisions the open
itself makes, from the same functions: where the state dir is
(:func:`~._dirs.state_folder`), the runtime and the signal that made it so
(:func:`~._runtime.opening_runtime`), the opt-out
(:func:`~._runtime.opted_out_by`), and what the dir holds as the doctor
reads it with the open's own verdicts (:func:`~._doctor.diagnose`). The
storage state is the end of the route those give, walked along the storage
table (:class:`~._storage.StorageMachine`), so its reason is the one
:attr:`IdentityStitch.storage_reason` gives after the open.

Making a report reads only. It cannot know what another process will do
meanwhile: a lock held at open time (``deferred``) or a disk that fails
while healing (``memory``) is not foreseen.
"""

from __future__ import annotations

import os

from idstitch.events._frozen import Frozen, freeze
from idstitch.store._names import (
    LOCK_NAME,
    LOG_NAME,
    NOTICE_NAME,
    SNAPSHOT_NAME,
    SPOOL_NAME,
    kept_names,
    pending_names,
)

from ._runtime import Runtime, opened_read_only_reason, opening_runtime, opted_out_by
from ._storage import Storage, StorageMachine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._doctor import Diagnosis

__all__ = ["OpenReport", "open_report"]


class OpenReport(Frozen):
    """What :meth:`IdentityStitch.open` would do with a state dir, were it called now.

    ``state_dir``: the dir (``None`` when there is none to use). ``runtime``
    and ``runtime_signal``: the runtime the open runs in and what made it so
    (``"argument"``, ``"IDSTITCH_RUNTIME"``, ``"CI variable CI"``, ``"a
    container"``, ...). ``runtime_reason`` and ``runtime_provider``: the same as a
    stable token and who it names (:class:`~._runtime.RuntimeVerdict`: ``"ci"`` and
    ``"GitHub Actions"``, ``"dev_container"`` and ``"GitHub Codespaces"``, ...), as
    the ``runtime_reason`` and ``runtime_provider`` event properties carry them.
    ``opted_out``: whether nothing new is recorded or
    sent (R14). ``route``: the storage transitions the open takes, in order
    (``("damage", "healed")``); ``storage`` and ``reason`` where they end:
    what :attr:`IdentityStitch.storage` and ``storage_reason`` say after it.
    ``holds_state``: whether the dir holds a state to start from (a log with
    records, a snapshot, another tool's state file); ``False``: the open
    mints a new device. ``files``: the state dir's files that exist (the
    log, the snapshot, the lock, the spool, pending forgettings, files kept
    aside), by name.
    """

    __slots__ = (
        "files",
        "holds_state",
        "opted_out",
        "reason",
        "route",
        "runtime",
        "runtime_provider",
        "runtime_reason",
        "runtime_signal",
        "state_dir",
        "storage",
    )
    state_dir: str | None
    runtime: Runtime
    runtime_signal: str
    runtime_reason: str
    runtime_provider: str | None
    opted_out: bool
    route: tuple[str, ...]
    storage: Storage
    reason: str
    holds_state: bool
    files: tuple[str, ...]

    def __init__(
        self,
        *,
        state_dir: str | None,
        runtime: Runtime,
        runtime_signal: str,
        opted_out: bool,
        route: tuple[str, ...],
        storage: Storage,
        reason: str,
        holds_state: bool,
        files: tuple[str, ...],
        runtime_reason: str,
        runtime_provider: str | None,
    ) -> None:
        freeze(self, locals())


def open_report(
    app: str | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    runtime: Runtime | str | None = None,
    env: Mapping[str, str] | None = None,
    opt_out_vars: tuple[str, ...] | list[str] = (),
    root: str = "/",
    is_tty: bool | None = None,
    diagnosis: Diagnosis | None = None,
) -> OpenReport:
    """How ``IdentityStitch.open`` with the same arguments would open the state dir; reads only.

    ``diagnosis``: :func:`~._doctor.diagnose`'s of that dir, when the caller
    has it already (it is not read again). Never raises for a dir it cannot
    use: the report says ``memory`` and why.
    """
    from ._dirs import state_folder

    env = os.environ if env is None else env
    folder, problem = state_folder(app, state_dir, env)
    names = _names(folder) if problem is None else []
    opted_out = opted_out_by(env, opt_out_vars)
    verdict = opening_runtime(
        runtime,
        env=env,
        root=root,
        is_tty=is_tty,
        has_state=lambda: LOG_NAME in names or SNAPSHOT_NAME in names,
    )
    runtime = verdict.runtime
    route: list[tuple[str, str]]
    holds_state = False
    if problem is not None:
        route = [("no_dir", problem)]
    else:
        route, holds_state, opted_out = _dir_route(
            folder, runtime, opted_out=opted_out, found=diagnosis
        )
    machine = StorageMachine()
    for event, reason in route:
        machine.fire(event, reason)
    return OpenReport(
        state_dir=None if problem is not None else folder,
        runtime=runtime,
        runtime_signal=verdict.signal,
        runtime_reason=verdict.reason,
        runtime_provider=verdict.provider,
        opted_out=opted_out,
        route=tuple(event for event, _ in route),
        storage=machine.current,
        reason=machine.reason,
        holds_state=holds_state,
        files=_store_files(names),
    )


def _dir_route(
    folder: str, runtime: Runtime, *, opted_out: bool, found: Diagnosis | None
) -> tuple[list[tuple[str, str]], bool, bool]:
    """The storage route of an open of the usable dir ``folder``, whether the dir holds a
    state to start from, and whether the open counts as opted out."""
    from ._doctor import CannotExamineError, Diagnosis, diagnose

    if found is None:
        try:
            found = diagnose(folder)
        except CannotExamineError as exc:
            if exc.kind != "missing":
                return [("no_dir", str(exc))], False, opted_out
            found = Diagnosis(folder)  # the open makes the dir (a run that may write)
        except OSError as exc:
            return [("no_dir", str(exc))], False, opted_out
    holds_state = bool(found.log_bytes) or found.snapshot in ("ok", "foreign")
    if found.host_opted_out:  # the host's own state file says telemetry is off
        opted_out = True
    # The user's recorded choice is known once the dir was read: the open then switches.
    consent_off = found.consent == "disabled" and not opted_out
    switch = [("consent_off", "telemetry disabled by the user's recorded choice")]
    if runtime is not Runtime.PERSISTENT or opted_out:
        event = "newer_format" if found.newer is not None else "read_only"
        why = opened_read_only_reason(opted_out=opted_out, runtime=runtime)
        return [(event, why)], holds_state, opted_out or consent_off
    if found.newer is not None:
        return [("newer_format", found.newer)], holds_state, opted_out or consent_off
    route = [("damage", found.problems[0]), ("healed", "")] if found.storage == "healing" else []
    route = (route or [("dir_ok", "")]) + (switch if consent_off else [])
    return route, holds_state, opted_out or consent_off


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder or ".")
    except OSError:
        return []


def _store_files(names: list[str]) -> tuple[str, ...]:
    """The state dir's own files among ``names``: what the store names, nothing else."""
    fixed = (LOG_NAME, SNAPSHOT_NAME, LOCK_NAME, SPOOL_NAME, NOTICE_NAME)
    own = [name for name in fixed if name in names]
    return (*own, *pending_names(names), *kept_names(names))
