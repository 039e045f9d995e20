"""The stitch owner: one :class:`IdentityStitch` per process, shared by every transport.

It holds the identity in memory, decides every change through the machine
(:mod:`idstitch.machine`), appends the change to the log, folds it back,
and hands the one alias to the sink. Because the gate lives here, no call
site can forget it.

Where the identity is kept is the storage state machine of
:mod:`._storage`: every fall-back (a busy lock, damage, a full disk, an
opted-out user) is one of its named edges. Start-up reads only the
snapshot, the last line of the log and the state dir's names; when they
agree nothing else is read and nothing is written. A change imports what
it needs first, then takes the thread lock and (on disk) the file lock,
applies pending forgettings, re-reads what other processes appended,
decides again and only then writes: so threads, asyncio tasks and
processes sharing a state dir alias at most once (rule R5).

No start path imports ``posthog``, ``pydantic``, ``transitions`` or
``orjson`` (bar B2), a change included: the log is written and read with
the standard library (the store's light read, the codec's canonical
JSON), each record is checked as the models would check it by
:mod:`idstitch.events._values`, and each decided edge is checked against
the transition table itself (:func:`~idstitch.machine._decide.check_decision`),
not by driving a ``transitions`` machine. Nor does it import the heavier
parts of the standard library (``json``, ``typing``, ``uuid``,
``datetime``, ``tempfile``, ``pathlib``: each several milliseconds).

Nothing here raises into the host (R13, R15): a refused id is logged and
reported by the return value (``strict=True`` raises, for the host's own
tests); I/O faults and damaged files take a storage edge instead.
"""

from __future__ import annotations

import _thread
import os

from idstitch.events._errors import IllegalUserIdError, LogDamagedError, NewerFormatError
from idstitch.events._ids import MAX_ID_LENGTH, check_user_id
from idstitch.events._kinds import OPENING_KINDS
from idstitch.events._voice import debug, warn
from idstitch.machine._decide import Decision, check_decision, decide
from idstitch.machine._fold import Identity, ReplayResult, fold
from idstitch.machine._table import FORGETTINGS, USER_EVENTS, State
from idstitch.store._fs import ends_with, holds
from idstitch.store._lock import LOCK_WAIT
from idstitch.store._names import DAMAGED, LOG_NAME, NOTICE_NAME, SNAPSHOT_ASIDE, SNAPSHOT_NAME
from idstitch.store._snapshot import read_snapshot, write_snapshot

from ._dirs import state_folder
from ._files import odd_kind, read_whole
from ._pending import pending_names, read_pending, remove_pending, write_pending
from ._runtime import (
    Runtime,
    RuntimeVerdict,
    opened_read_only_reason,
    opening_runtime,
    opt_out_variable,
)
from ._runtime import _ci as ci_found
from ._storage import Storage, StorageMachine
from ._trust import (
    fold_noting,
    foreign_identity,
    heal_plan,
    log_damage,
    snapshot_identity,
    snapshot_offset,
)

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime
    from typing import Any

    from idstitch.events import Record
    from idstitch.store import FileLog, IdentityLog, MemoryLog, SnapshotRead

    from ._command import Command
    from ._consent import TelemetryStatus
    from ._protocol import Sink

    #: :func:`._properties.every_event`'s arguments: verdict, app, app_version, is_tty, extra.
    _About = tuple[RuntimeVerdict, str | None, str | None, bool | None, dict[str, object]]

__all__ = ["ALIAS_ATTEMPTS", "LOCK_WAIT", "OPEN_WAIT", "IdentityStitch"]

_VOICE = "idstitch.service"


#: Seconds an open waits for the lock when it has pending forgettings or a stale snapshot
#: to write: a start never waits for a stuck holder (the next change tries again).
OPEN_WAIT = 0.1

#: How many aliases a process's responses try before they only stamp (R9).
ALIAS_ATTEMPTS = 3


#: Events that merge persons in PostHog: only the service's own alias may do that.
_MERGING_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously"})

#: Modules a change needs, imported before any lock is taken (a cold import
#: under the lock holds every other process up; it once took 120 ms).
_CHANGE_MODULES = ("idstitch.store._log",)


def _new_device_id() -> str:
    """A random device id: ``str(uuid.uuid4())``, made without importing ``uuid`` (9 ms)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class _Journal:
    """The state dir's log as this process has read it.

    ``identity`` is the fold of the log up to ``offset`` (the byte just past
    the last record folded); ``seen`` the log's size when last read (more
    than ``offset`` by a torn last write, which the next append removes).
    ``snapshot_path`` is ``None`` for an ephemeral run's audit log. The
    :class:`FileLog` is built on first use, so a start that changes nothing
    never imports the log module.
    """

    __slots__ = ("_log", "folder", "identity", "log_path", "offset", "seen", "snapshot_path")

    def __init__(self, log_path: str, snapshot_path: str | None) -> None:
        self.log_path = log_path
        self.snapshot_path = snapshot_path
        self.folder = os.path.dirname(log_path) or "."
        self.offset = 0
        self.seen = 0
        self.identity: Identity | None = None
        self._log: FileLog | None = None

    @property
    def log(self) -> FileLog:
        if self._log is None:
            from idstitch.store._log import FileLog

            self._log = FileLog(self.log_path, lock_timeout=LOCK_WAIT, light=True)
        return self._log

    def moved(self) -> bool:
        """Whether the log's size differs from what this process last read."""
        try:
            return os.stat(self.log_path).st_size != self.seen
        except OSError:
            return True  # let the locked path find out


class IdentityStitch:
    """The identity of one host CLI process; create it with :meth:`open`."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        sink: Sink,
        opted_out: bool,
        state_dir: str | None,
        strict: bool = False,
        clock: Callable[[], datetime] | None = None,
        new_device_id: Callable[[], str] | None = None,
    ) -> None:
        self._identity = _placeholder()
        self._journal: _Journal | None = None
        self._memory: MemoryLog | None = None
        self._storage = StorageMachine()
        self._runtime = runtime
        self._sink = sink
        self._opted_out = opted_out
        self._state_dir = state_dir
        self._strict = strict
        self._clock = clock
        self._new_device_id = new_device_id or _new_device_id
        self._lock = _thread.RLock()
        self._groups: dict[str, str] = {}
        #: What every capture's default properties are made of (:func:`._properties.every_event`'s
        #: arguments, set by :meth:`open`), and those properties once the first capture built them.
        self._about: _About = (
            RuntimeVerdict(runtime, "argument", "argument"),
            None,
            None,
            None,
            {},
        )
        self._every: dict[str, object] | None = None
        #: Aliases that failed to queue in this process (R9: each is retried later).
        self._alias_failures = 0
        #: Whether the identity is the whole log's fold (not a snapshot's word for it).
        self._log_verified = False
        #: The user a read-only run found in the state dir (a forgetting of theirs is durable).
        self._dir_user: str | None = None
        #: Why ids were refused in this process (each is warned about once).
        self._refusals: set[str] = set()
        #: Files this process kept aside while healing (for reports).
        self.kept: list[str] = []
        #: The environment variable that opted out, if one did (telemetry status).
        self._opt_out_by: str | None = None
        #: The host's name, and the sink it gave with how it was attached (for consent).
        self._app: str | None = None
        self._host_sink: Sink | None = None
        self._attached: dict[str, Any] | None = None
        #: Whether this process sends nothing because the recorded consent says so, and
        #: whether that switch took the storage from healthy (or deferred) to read-only.
        self._off_by_consent = False
        self._storage_off_by_consent = False
        #: Whether the consent in force is durable in the state dir (not in memory only).
        self._consent_recorded = True
        #: The host's first-run notice (``open(notice=...)``), and the environment the run
        #: opened with (asked only when a notice is due: never in CI, whatever the runtime).
        self._notice: str | None = None
        self._env: Mapping[str, str] = {}
        #: The host's sink, held back until the notice is shown (``notice_before_sending``).
        self._held: Sink | None = None
        _LIVE_STITCHES.append(self)

    # ------------------------------------------------------------------ open

    @classmethod
    def open(
        cls,
        app: str | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        runtime: Runtime | str | None = None,
        sink: Sink | None = None,
        env: Mapping[str, str] | None = None,
        opt_out_vars: tuple[str, ...] | list[str] = (),
        strict: bool = False,
        audit_log: str | os.PathLike[str] | None = None,
        root: str = "/",
        is_tty: bool | None = None,
        clock: Callable[[], datetime] | None = None,
        new_device_id: Callable[[], str] | None = None,
        app_version: str | None = None,
        properties: Mapping[str, object] | None = None,
        notice: str | None = None,
        notice_before_sending: bool = False,
    ) -> IdentityStitch:
        """The identity of this process, read from ``state_dir`` (or ``app``'s default dir).

        ``sink`` is where events go: for a CLI, a
        :class:`~idstitch.adapters.sinks.SpoolSink` (events are spooled in the
        state dir and delivered by a detached sender: no command waits for the
        network); a sink with an ``attach`` method is told here where the state
        dir is, the runtime, and whether the user opted out.
        ``runtime`` (or ``IDSTITCH_RUNTIME``) overrides detection. In an
        ephemeral runtime nothing is written unless ``audit_log`` names a
        file to keep the log in. ``DO_NOT_TRACK`` or any of ``opt_out_vars``
        set truthy: nothing is sent and nothing new recorded, but a logout
        still forgets a user the state dir holds (R14). ``strict=True``
        (the host's own tests) raises :class:`IllegalUserIdError` for an
        illegal user id. ``root``, ``is_tty``, ``clock`` and
        ``new_device_id`` are for tests. Never raises for I/O faults or
        damaged files: damage is healed, other faults fall back to memory
        (see :attr:`storage`). A ``disabled`` consent recorded in the state
        dir (:meth:`disable_telemetry`) makes the run an opted-out one, in
        every runtime, once the dir was read.

        Every capture carries default properties (``cli_name`` is ``app``,
        ``cli_version`` is ``app_version``, idstitch's version, the
        architecture, the runtime and why, whether stdout is a terminal:
        :mod:`._properties`) and the host's ``properties`` over them; an
        event's own properties win over both.

        ``notice`` is the host's first-run telemetry notice, shown by the
        first reported command (:meth:`command`, :func:`idstitch.instrument`)
        under the rules of :meth:`first_run_notice`. ``notice_before_sending=True``
        (Homebrew's rule): until the notice was shown on this machine, every
        event is dropped and no alias is spent; a run that never shows it (CI,
        a container, stderr not a terminal) sends nothing.
        """
        env = os.environ if env is None else env
        folder, problem = state_folder(app, state_dir, env)
        opt_out_by = opt_out_variable(env, opt_out_vars)
        opted_out = opt_out_by is not None
        log_path = os.path.join(folder, LOG_NAME)
        snapshot_path = os.path.join(folder, SNAPSHOT_NAME)
        verdict = opening_runtime(
            runtime,
            env=env,
            root=root,
            is_tty=is_tty,
            has_state=lambda: (
                problem is None and (os.path.exists(log_path) or os.path.exists(snapshot_path))
            ),
        )
        runtime = verdict.runtime
        host_sink = sink
        attached = {
            "state_dir": folder if problem is None else None,
            "persistent": runtime is Runtime.PERSISTENT,
            "root": root,
        }
        _attach(sink, attached, opted_out=opted_out)
        if opted_out or sink is None:
            from ._sinks import NullSink

            sink = NullSink(queued=not opted_out, sends=False)
        stitch = cls(
            runtime=runtime,
            sink=sink,
            opted_out=opted_out,
            state_dir=folder if problem is None else None,
            strict=strict,
            clock=clock,
            new_device_id=new_device_id,
        )
        stitch._about = (verdict, app, app_version, is_tty, dict(properties or {}))
        try:
            if problem is not None:
                stitch._to_memory("no_dir", problem)
            elif runtime is Runtime.EPHEMERAL and audit_log is not None and not opted_out:
                stitch._load_audit_log(os.fspath(audit_log))
            else:
                writable = runtime is Runtime.PERSISTENT and not opted_out
                stitch._load_state_dir(log_path, snapshot_path, writable=writable)
        except Exception as exc:  # noqa: BLE001 - R15: a fault here must not break the host
            debug(_VOICE, "idstitch: cannot use the state dir %s (%r)", folder, exc)
            opening = stitch._storage.state not in tuple(Storage)
            stitch._to_memory("no_dir" if opening else "disk_fault", repr(exc))
        if stitch._identity.seq == 0:  # nothing on disk to start from: mint a device in memory
            stitch._start_in_memory()
        stitch._app, stitch._opt_out_by = app, opt_out_by
        stitch._host_sink = host_sink if host_sink is not None else stitch._sink
        stitch._attached = attached
        if not opted_out and stitch._identity.consent == "disabled":
            stitch._consent_off()  # known only now that the dir was read: the switch
        stitch._notice, stitch._env = notice, env
        if notice_before_sending and not os.path.exists(os.path.join(folder, NOTICE_NAME)):
            # Events are dropped, not kept: none may leave before the notice was shown.
            from ._sinks import NullSink

            stitch._held, stitch._sink = stitch._sink, NullSink(queued=False, sends=False)
        return stitch

    def _load_audit_log(self, path: str) -> None:
        """Ephemeral with an audit log: that file is the log (there is no snapshot).

        Several runs may share one audit log (parallel CI jobs on one machine):
        it is read, and every change later decided, under its file lock after
        folding what the others appended, exactly as a state dir's log is.
        """
        from idstitch.store._snapshot import SnapshotRead

        journal = _Journal(path, None)
        self._warm_up()
        with journal.log.locked():
            self._rebuild_locked(journal, SnapshotRead("missing"), [])

    def _load_state_dir(self, log_path: str, snapshot_path: str, *, writable: bool) -> None:
        folder = os.path.dirname(log_path)
        pending = pending_names(_names(folder))
        snapshot = read_snapshot(snapshot_path)
        journal = _Journal(log_path, snapshot_path)
        try:
            verdict = _from_snapshot(snapshot, journal)
        except OSError:  # not a file one can read (a FIFO, a link): the rebuild says what
            verdict = None
        if verdict is not None:
            assert journal.identity is not None
            self._identity = journal.identity
            if not writable:
                self._read_only(journal, "read_only", self._why_read_only(), pending)
                return
            self._journal = journal
            self._storage.fire("dir_ok")
            if pending or verdict == "stale":
                self._under_lock_at_open(pending)
            return
        if snapshot.status == "ok" and snapshot_identity(snapshot) is None:
            snapshot = _corrupt("it does not hold an identity a log could have written")
        if (
            snapshot.status == "foreign"
            and snapshot.data.get("enabled") is False
            and not os.path.exists(log_path)
        ):
            # The host's own state file says telemetry is off: honour it as an opt-out.
            from ._sinks import NullSink

            self._opted_out = True
            self._sink = NullSink(queued=False, sends=False)
            writable = False
        if snapshot.status == "newer":
            warn(
                _VOICE,
                "idstitch: %s was written by a newer idstitch; it is left as it is and this "
                "run keeps the identity in memory",
                snapshot_path,
            )
            self._read_unlocked(journal, snapshot, pending, event="newer_format")
            return
        if not writable:
            self._read_unlocked(journal, snapshot, pending, event="read_only")
            return
        self._warm_up()
        self._clear_lock_path(journal)
        try:
            with journal.log.locked():
                self._rebuild_locked(journal, snapshot, pending)
        except TimeoutError:
            self._read_unlocked(journal, snapshot, pending, event="lock_busy")

    def _clear_lock_path(self, journal: _Journal) -> None:
        """A link or FIFO planted as the lock file is never opened: it is kept aside (no one
        can hold a lock on it), so that the lock works again from this run on."""
        lock_path = journal.log.lock_file
        if odd_kind(lock_path) is not None:
            self._keep_aside(lock_path, DAMAGED)

    def _writable_run(self) -> bool:
        """Whether this run would write the state dir, were nothing in the way."""
        return self._runtime is Runtime.PERSISTENT and not self._opted_out

    def _why_read_only(self) -> str:
        return opened_read_only_reason(opted_out=self._opted_out, runtime=self._runtime)

    def _read_only(self, journal: _Journal, event: str, reason: str, pending: list[str]) -> None:
        """Keep the identity read from the dir in memory; an opted-out run may still forget."""
        self._storage.fire(event, reason)
        self._dir_user = self._dir_user or self._identity.user_id
        if (
            event == "read_only"
            and self._opted_out
            and self._runtime is Runtime.PERSISTENT
            and journal.snapshot_path is not None
        ):
            self._journal = journal  # R14: the one write opt-out allows is a forgetting
        self._apply_pending_in_memory(journal.folder, pending)

    def _read_unlocked(
        self, journal: _Journal, snapshot: SnapshotRead, pending: list[str], *, event: str
    ) -> None:
        """Read the whole log without its lock: this run writes nothing now.

        On damage the identity is the one a heal would start from (the next
        run that may write heals for real), so a read-only run never trusts
        what a heal would not.
        """
        reader = journal.log.records()
        result, hashes, devices = fold_noting(reader)
        good, held = result.identity, snapshot_identity(snapshot)
        # Whom the dir may hold (a heal under way may have moved the log aside): a forgetting
        # of theirs must outlive this run even though it writes nothing else (R16).
        self._dir_user = next((i.user_id for i in (good, held) if i and i.user_id), None)
        newer = isinstance(result.error, NewerFormatError)
        damaged = None is not log_damage(
            error=result.error,
            held=held,
            hashes=hashes,
            good=good,
            log_end=result.checkpoint_offset,
            snapshot=snapshot,
        )
        if newer and event == "read_only":
            event = "newer_format"
        adopted = foreign_identity(snapshot) if good is None and not damaged else None
        if adopted is not None:  # a host's own state file, taken as it is, in memory only
            decision = decide(
                None,
                "import",
                runtime=self._runtime.value,
                pid=os.getpid(),
                device_id=adopted[0],
                user_id=adopted[1],
                aliased=adopted[1] is not None,
            )
            assert decision is not None
            self._commit(decision, to_disk=False)
        if damaged:
            plan = heal_plan(
                good=good,
                good_devices=devices,
                held=held,
                data=read_whole(journal.log_path),
                good_end=result.checkpoint_offset,
            )
            decision = decide(
                None,
                "heal",
                runtime=self._runtime.value,
                pid=os.getpid(),
                device_id=plan.device_id or self._new_device_id(),
                user_id=plan.user_id,
                linked_user=plan.linked_user,
                kept="none",
            )
            assert decision is not None
            self._commit(decision, to_disk=False)
            self._carry_consent(good, held)
        elif good is not None:
            self._identity = good
        if event == "lock_busy" and not damaged and not newer:
            journal.identity, journal.offset = good, result.checkpoint_offset
            journal.seen = _size(journal.log_path)
            self._journal = journal
            self._storage.fire("lock_busy", "another process holds the lock")
            self._apply_pending_in_memory(journal.folder, pending)
            return
        reason = self._why_read_only()
        if event == "newer_format" and self._writable_run():
            # L8 says why this persistent run writes nothing: the newer build's files.
            newer_snapshot = snapshot.problem if snapshot.status == "newer" else None
            reason = newer_snapshot or str(result.error)
        if event == "lock_busy":
            event = "newer_format" if newer else "read_only"
            reason = "the log needs healing and another process holds the lock"
        journal.identity, journal.offset = good, result.checkpoint_offset
        if damaged or newer:
            journal = _Journal(journal.log_path, None)  # never write after damage read-only
        self._read_only(journal, event, reason, pending)

    def check(self, wait: float = LOCK_WAIT) -> bool:
        """Read the whole state dir now, under its lock: heal damage, apply pending forgettings.

        What the first change of a run does anyway, on demand (``idstitch doctor
        --repair``). Waits at most ``wait`` seconds for the lock. Returns whether
        the identity is now kept healthy on disk. Never raises.
        """
        try:
            with self._lock:
                journal = self._journal
                if journal is None or self._storage.state is not Storage.HEALTHY:
                    return self.persisting
                self._warm_up()
                with journal.log.locked().try_locked(wait) as held:
                    if held and self._verify_locked():
                        self._apply_pending_locked()
                        self._save_snapshot()
        except Exception as exc:  # noqa: BLE001 - R15: never break the host
            debug(_VOICE, "idstitch: the check failed (%r)", exc)
        return self.persisting

    def _under_lock_at_open(self, pending: list[str]) -> None:
        """Fold what others appended and apply pending forgettings, under the lock."""
        assert self._journal is not None
        self._clear_lock_path(self._journal)
        lock = self._journal.log.locked()
        with lock.try_locked(0) as free:
            pass  # a probe: a start that cannot write now imports nothing for it
        if free:
            self._warm_up()
        with lock.try_locked(OPEN_WAIT if free else 0) as held:
            if held:
                if self._verify_locked():  # it may write: the whole log is read first
                    self._apply_pending_locked()
                    self._save_snapshot()
                return
        # Another process holds the lock: never make the host's start wait for it.
        self._storage.fire("lock_busy", "another process holds the lock")
        self._apply_pending_in_memory(self._journal.folder, pending)

    def _rebuild_locked(
        self, journal: _Journal, snapshot: SnapshotRead, pending: list[str]
    ) -> None:
        """Replay the whole log under its lock, heal it if it cannot be trusted, then use it."""
        held = snapshot_identity(snapshot)
        odd = odd_kind(journal.log_path)
        if odd is not None and journal.snapshot_path is not None:
            what = f"{os.path.basename(journal.log_path)} is {odd}, not a regular file"
            self._heal(journal, good=None, good_end=0, devices=set(), held=held, damage=what)
            self._apply_pending_locked()
            return
        reader = journal.log.records()
        result, hashes, devices = fold_noting(reader)
        good = result.identity
        if isinstance(result.error, NewerFormatError):
            journal.identity, journal.offset = good, reader.checkpoint.offset
            if good is not None:
                self._identity = good
            warn(
                _VOICE,
                "idstitch: %s holds records of a newer idstitch (%s); it is left as it is and "
                "this run keeps the identity in memory",
                journal.log_path,
                result.error,
            )
            self._storage.fire("newer_format", str(result.error))
            self._dir_user = self._identity.user_id
            self._apply_pending_in_memory(journal.folder, pending)
            return
        good_seq = 0 if good is None else good.seq
        damage = log_damage(
            error=result.error,
            held=held,
            hashes=hashes,
            good=good,
            log_end=reader.checkpoint.offset,
            snapshot=snapshot,
        )
        if damage is not None and journal.snapshot_path is None and _is_torn(result.error):
            damage = None  # an audit log's cut-off write: removed by the next append
        if damage is not None and journal.snapshot_path is not None:
            self._heal(
                journal,
                good=good,
                good_end=reader.checkpoint.offset,
                devices=devices,
                held=held,
                damage=damage,
            )
            self._apply_pending_locked()
            return
        if damage is not None:  # an audit log: nothing lasting rides on it, never heal it
            raise LogDamagedError(
                seq=good_seq + 1, offset=reader.checkpoint.offset, cause="damaged", detail=damage
            )
        if (held is None and snapshot.status in SNAPSHOT_ASIDE) or (
            held is not None and held.h not in hashes
        ):
            # Not this log's snapshot (or not a snapshot): kept, byte for byte, then rebuilt.
            self._keep_aside(journal.snapshot_path, SNAPSHOT_ASIDE[snapshot.status])
        journal.identity = good
        journal.offset = reader.checkpoint.offset
        journal.seen = _size(journal.log_path)
        self._journal = journal
        if self._storage.state not in tuple(Storage):
            self._storage.fire("dir_ok")
        self._log_verified = True  # this identity is the whole log's fold
        if good is None:
            self._start_log(snapshot)
        else:
            self._identity = good
            self._save_snapshot()
        self._apply_pending_locked()

    def _start_log(self, snapshot: SnapshotRead | None) -> None:
        """Write the first record: adopt a foreign state file, or mint a device."""
        adopted = foreign_identity(snapshot) if snapshot is not None else None
        pid = os.getpid()
        runtime = self._runtime.value
        if adopted is not None:
            device_id, user_id = adopted
            decision = decide(
                None,
                "import",
                runtime=runtime,
                pid=pid,
                device_id=device_id,
                user_id=user_id,
                aliased=user_id is not None,
            )
        else:
            decision = decide(
                None, "genesis", runtime=runtime, pid=pid, device_id=self._new_device_id()
            )
        assert decision is not None
        self._commit(decision)
        self._save_snapshot()

    def _keep_aside(self, path: str | None, label: str, *, required: bool = False) -> str | None:
        """Keep a file that is about to be replaced, byte for byte; never replace a kept one.

        ``required``: a failure raises ``OSError`` (a heal must not go on); else it is logged.
        """
        if path is None or not os.path.lexists(path):
            return None
        from idstitch.store._aside import keep_aside

        try:
            kept = keep_aside(path, label=label)
        except OSError as exc:
            if required:
                raise
            debug(_VOICE, "idstitch: could not keep %s aside: %r", path, exc)
            return None
        self.kept.append(kept)
        return kept

    # --------------------------------------------------------------- healing

    def _heal(
        self,
        journal: _Journal,
        *,
        good: Identity | None,
        good_end: int,
        devices: set[str],
        held: Identity | None,
        damage: str,
    ) -> None:
        """Keep the damaged log aside and start a new one from what can be trusted (under the lock).

        On failure the identity goes to memory (``heal_failed``); the next
        run tries again, since nothing was rewritten.
        """
        self._storage.fire("damage", damage)
        try:
            odd = odd_kind(journal.log_path) is not None
            data = b"" if odd else read_whole(journal.log_path, strict=True)
            plan = heal_plan(
                good=good, good_devices=devices, held=held, data=data, good_end=good_end
            )
            kept = self._keep_aside(journal.log_path, DAMAGED, required=True)
            kept_snapshot = self._keep_aside(journal.snapshot_path, DAMAGED)
            kept = kept or kept_snapshot
            device_id = plan.device_id or self._new_device_id()
            decision = decide(
                None,
                "heal",
                runtime=self._runtime.value,
                pid=os.getpid(),
                device_id=device_id,
                user_id=plan.user_id,
                linked_user=plan.linked_user,
                kept=os.path.basename(kept) if kept else "none",
            )
            assert decision is not None
            journal.identity, journal.offset, journal.seen = None, 0, 0
            self._journal = journal
            self._identity = _placeholder()
            self._memory = None
            self._commit(decision)  # raises OSError while healing: nothing falls back silently
            self._carry_consent(good, held)
        except OSError as exc:
            self._storage.fire("heal_failed", repr(exc))
            self._journal = None
            fallback = held if held is not None and (good is None or held.seq > good.seq) else good
            self._identity = fallback if fallback is not None else _placeholder()
            self._memory = None
            warn(
                _VOICE,
                "idstitch: the identity log %s is damaged (%s) and could not be healed (%r); "
                "nothing was changed and this run keeps the identity in memory; "
                "see `idstitch doctor %s`",
                journal.log_path,
                damage,
                exc,
                journal.folder,
            )
            return
        self._storage.fire("healed")
        self._log_verified = True
        self._save_snapshot()
        identity = self._identity
        warn(
            _VOICE,
            "idstitch: the identity log %s was damaged (%s); it was kept as %s, byte for byte, "
            "and a new log started from %s (device %s, user %s%s); see `idstitch doctor %s`",
            journal.log_path,
            damage,
            kept,
            plan.source,
            identity.device_id,
            identity.user_id or "none",
            f", aliased to {identity.linked_user}" if identity.linked_user else "",
            journal.folder,
        )

    def _carry_consent(self, good: Identity | None, held: Identity | None) -> None:
        """After a heal's first record: the user's telemetry choice goes on too (a ``consent``
        record right after it), from the later of the good records and the snapshot."""
        later = held if held is not None and (good is None or held.seq > good.seq) else good
        if later is not None and later.consent is not None:
            decision = self._decide("consent", telemetry=later.consent)
            if decision is not None:
                self._commit(decision)

    # ------------------------------------------------------------- reading

    @property
    def device_id(self) -> str:
        """The device id in force."""
        return self._identity.device_id

    @property
    def user_id(self) -> str | None:
        """The user known to this process (stamped or aliased), if any."""
        return self._identity.user_id

    @property
    def distinct_id(self) -> str:
        """The id events go under: the user id when stamped or aliased, else the device id."""
        return self._identity.distinct_id

    @property
    def state(self) -> State:
        """``anonymous``, ``stamped``, ``aliased`` or ``reset``."""
        return self._identity.state

    @property
    def runtime(self) -> Runtime:
        """The runtime this process was classified as."""
        return self._runtime

    @property
    def storage(self) -> Storage:
        """Where the identity is kept: ``healthy``, ``read_only``, ``deferred``, ``memory``."""
        return self._storage.current

    @property
    def storage_reason(self) -> str:
        """Why the storage state is what it is, in words."""
        return self._storage.reason

    @property
    def persisting(self) -> bool:
        """Whether changes are written to the state dir (persistent and healthy)."""
        return (
            self._storage.state is Storage.HEALTHY
            and self._journal is not None
            and self._journal.snapshot_path is not None
        )

    @property
    def opted_out(self) -> bool:
        """Whether ``DO_NOT_TRACK`` or a host opt-out variable is set, or the user's recorded
        consent disables telemetry (rule R14): nothing is sent, nothing new recorded."""
        return self._opted_out

    @property
    def state_dir(self) -> str | None:
        """The state dir in use, if any."""
        return self._state_dir

    @property
    def log(self) -> IdentityLog:
        """The log this process appends to (a :class:`MemoryLog` when nothing is written)."""
        return self._current_log()

    def _on_disk(self) -> bool:
        """Whether changes go to the journal now (healthy, or writing a heal's first record)."""
        storage = self._storage.state
        return storage in (Storage.HEALTHY, Storage.HEALING) and self._journal is not None

    def _current_log(self, *, to_disk: bool | None = None) -> IdentityLog:
        if self._on_disk() if to_disk is None else to_disk:
            assert self._journal is not None
            return self._journal.log
        if self._memory is None:
            from idstitch.events import START, Checkpoint
            from idstitch.store import MemoryLog

            identity = self._identity
            self._memory = MemoryLog(
                Checkpoint(identity.seq, identity.h, 0) if identity.seq else START, light=True
            )
        return self._memory

    @property
    def identity(self) -> Identity:
        """The whole folded identity (for audits and tests)."""
        return self._identity

    # ------------------------------------------------------------- changing

    def observe_authenticated_response(self, user_id: str | int) -> bool:
        """An authenticated response named ``user_id``: stamp, and alias if this is the first.

        Returns ``True`` when the id was taken (the identity now carries
        it), ``False`` when R13 refused it: nothing changed, and a warning
        says why (``strict=True`` raises :class:`IllegalUserIdError`
        instead). An integer id is taken as its decimal text, as PostHog's
        client does. The steady state (the same user again) takes no lock
        and writes nothing. Never raises for I/O faults.
        """
        return self._user_event("response", user_id)

    def login(self, user_id: str | int) -> bool:
        """The login command learned ``user_id``; a no-op if the response hook already stitched.

        Returns as :meth:`observe_authenticated_response` does.
        """
        return self._user_event("login", user_id)

    def logout(self) -> None:
        """Forget the user and rotate the device id, in memory and on disk (rules R7, R16).

        When it returns, every later process opens without that user: the
        change is in the log, or (another process holding the lock past
        :data:`LOCK_WAIT`) in a pending file the next process applies.
        Under opt-out it is the one write made, and only when the state dir
        holds a user. Never raises.
        """
        self._change("logout", device_id=self._new_device_id())

    def clear_distinct_id(self) -> None:
        """Forget the user after a transient failure; keep the device (rules R8, R16)."""
        self._change("clear")

    # -------------------------------------------------------------- consent

    def telemetry_status(self) -> TelemetryStatus:
        """Whether this process sends events, and why (environment > recorded consent >
        default). Reads nothing: the consent came with the identity. A command run that
        asks (``telemetry status``) sends no event. Never raises."""
        from ._command import unreport
        from ._consent import telemetry_status

        unreport(self)
        identity = self._identity
        return telemetry_status(
            opted_out_by=self._opt_out_by,
            consent=identity.consent,
            recorded_at=identity.consent_at,
            recorded=self._consent_recorded,
            app=self._app,
        )

    def enable_telemetry(self) -> TelemetryStatus:
        """Record the user's choice to send telemetry (a ``consent`` record); the status after.

        Written whatever the runtime and an environment opt-out say (it is the
        user's own instruction and holds no usage data); an environment
        opt-out still wins when a run starts. A process that started with
        telemetry disabled by consent sends again from now on (an environment
        opt-out aside). Enabling when it is recorded already writes nothing.
        Never raises.
        """
        return self._set_consent("enabled")

    def disable_telemetry(self) -> TelemetryStatus:
        """Record the user's choice to send no telemetry; the status after.

        Takes effect at once: nothing more is sent by this process, the events
        not yet sent (the spool) are deleted, and every later run that reads the
        state dir behaves as an opted-out one (R14). Never lost: when the log
        cannot take it now (a busy lock, a refusing disk, a newer format) it
        goes to a pending file that the next run applies first; the status
        says ``recorded=False`` only when even that failed (it then holds for
        this process only). Never raises.
        """
        return self._set_consent("disabled")

    def _set_consent(self, choice: str) -> TelemetryStatus:
        """Record ``choice``; the command run that made it sends no event (see ``unreport``)."""
        try:
            with self._lock:
                self._consent_recorded = self._record_consent(choice, elsewhere=True)
                if choice == "disabled":
                    self._consent_off()
                else:
                    self._consent_on()
        except Exception as exc:  # noqa: BLE001 - R15: never break the host
            debug(_VOICE, "idstitch: the telemetry choice failed (%r)", exc)
        return self.telemetry_status()

    def _record_consent(self, choice: str, *, elsewhere: bool = False) -> bool:
        """Append the ``consent`` record (under the file lock, after catching up); whether the
        choice is now durable. ``elsewhere``: a run with no writable journal (ephemeral, an
        audit log, memory) has a persistent opening of the state dir write it."""
        journal = self._journal
        storage = self._storage.state
        if (
            journal is None
            or journal.snapshot_path is None
            or storage not in (Storage.HEALTHY, Storage.DEFERRED, Storage.READ_ONLY)
        ):
            return self._consent_elsewhere(choice) if elsewhere else self._pend_consent(choice)
        self._warm_up()  # no import while holding the lock
        self._clear_lock_path(journal)
        read_only = storage is Storage.READ_ONLY
        wait = OPEN_WAIT if storage is Storage.DEFERRED else LOCK_WAIT
        try:
            with journal.log.locked().try_locked(wait) as held:
                self._ready_locked(read_only=read_only, held=held)
                self._apply_pending_locked()
                decision = self._decide("consent", telemetry=choice)
                if decision is None:
                    return True  # that very choice is in the log already
                if not self._commit(decision, to_disk=True):
                    return self._pend_consent(choice)  # the disk refused: memory took over
                self._save_snapshot(to_disk=True)
                return True
        except TimeoutError:
            self._storage.fire("lock_busy", "another process held the lock past the wait")
        except (OSError, LogDamagedError, _UnwritableError) as exc:
            if self._storage.state not in (Storage.MEMORY, Storage.READ_ONLY):
                self._to_memory("disk_fault", repr(exc))
        return self._pend_consent(choice)

    def _consent_elsewhere(self, choice: str) -> bool:
        """A run that keeps no journal of the state dir (ephemeral, memory): the choice is
        written by a persistent opening of that dir, then made in this process's memory."""
        recorded = False
        if self._state_dir is not None:
            writer = IdentityStitch.open(state_dir=self._state_dir, runtime="persistent", env={})
            recorded = writer._record_consent(choice)
        self._apply_in_memory("consent", {"telemetry": choice})
        return recorded

    def _pend_consent(self, choice: str) -> bool:
        """The log cannot take the choice now: a pending file keeps it (as a logout is kept,
        R16), and this process makes it in memory. Whether the pending file was written."""
        recorded = False
        if self._state_dir is not None:
            try:
                write_pending(
                    self._state_dir, kind="consent", new_device_id=None, at=self._now(),
                    telemetry=choice,
                )  # fmt: skip
                recorded = True
            except OSError as exc:
                warn(
                    _VOICE,
                    "idstitch: the telemetry choice could not be recorded in %s (%r); it "
                    "holds for this run only",
                    self._state_dir,
                    exc,
                )
        if not self._on_disk():
            self._apply_in_memory("consent", {"telemetry": choice})
        return recorded

    def _consent_off(self) -> None:
        """The consent says no: from now on this run is an opted-out one (R14). Nothing is
        sent (a sink that sends nothing), the events not yet sent are deleted (the sink is
        attached again as opted out, which empties its spool), nothing new is recorded
        (read-only storage, whose one write is a forgetting or the user's choice)."""
        from ._sinks import NullSink

        if self._opted_out and not self._off_by_consent:
            return  # the environment opted out already: all of this was done at the open
        self._opted_out = self._off_by_consent = True
        self._sink = NullSink(queued=False, sends=False)
        if self._held is not None:  # showing the notice must not let the host's sink through
            self._held = self._sink
        if self._attached is not None:
            _attach(self._host_sink, self._attached, opted_out=True)
        if self._storage.state in (Storage.HEALTHY, Storage.DEFERRED):
            self._storage.fire("consent_off", "telemetry disabled by the user's recorded choice")
            self._storage_off_by_consent = True
            self._dir_user = self._dir_user or self._identity.user_id

    def _consent_on(self) -> None:
        """The user enabled telemetry in a run the consent had switched off: back as it was."""
        if not self._off_by_consent or self._identity.consent != "enabled":
            return
        self._opted_out = self._off_by_consent = False
        if self._attached is not None:
            _attach(self._host_sink, self._attached, opted_out=False)
        if self._held is not None:  # still behind the notice (notice_before_sending)
            self._held = self._host_sink
        elif self._host_sink is not None:
            self._sink = self._host_sink
        journal = self._journal
        if (
            self._storage_off_by_consent
            and self._storage.state is Storage.READ_ONLY
            and journal is not None
            and journal.identity == self._identity  # the choice is in the log, not pending
        ):
            self._storage_off_by_consent = False
            self._storage.fire("consent_on")

    def _user_event(self, kind: str, user_id: str | int) -> bool:
        try:
            if type(user_id) is int:  # not bool: True is no id
                user_id = _int_id(user_id)
            check_user_id(user_id)
        except IllegalUserIdError as exc:
            if self._strict:
                raise
            # One warning per problem: a server that keeps sending "null" is reported once.
            say = debug if exc.reason in self._refusals else warn
            self._refusals.add(exc.reason)
            say(_VOICE, "idstitch: %s refused: %s; nothing changed", kind, exc.reason)
            return False
        assert isinstance(user_id, str)
        try:
            steady = self._decide(kind, user_id=user_id) is None
            if steady and not (self._journal is not None and self._journal.moved()):
                return True  # the steady state: no lock, no write, one stat
        except Exception as exc:  # noqa: BLE001 - R15: never break the host
            debug(_VOICE, "idstitch: %s could not be decided (%r)", kind, exc)
            return True
        self._change(kind, user_id=user_id)
        return True

    def _writes(self, event: str) -> bool:
        """Whether ``event`` goes to the state dir now (else it is made in memory)."""
        journal, storage = self._journal, self._storage.state
        if journal is None:
            return False
        if storage in (Storage.HEALTHY, Storage.DEFERRED):
            return True
        # Read-only (opted out): only forgetting a user the dir holds (R14, R16); never
        # one this run stamped in memory only.
        holds = journal.identity
        return (
            storage is Storage.READ_ONLY
            and event in FORGETTINGS
            and holds is not None
            and holds.user_id is not None
        )

    def _change(self, event: str, **args: Any) -> None:  # noqa: ANN401
        """Decide and make one change: on disk under the file lock when it may, else in memory."""
        try:
            with self._lock:
                if not self._writes(event):
                    if self._forgets_on_disk(event):
                        self._defer(event, args)  # the log cannot take it: a pending file can
                    else:
                        self._apply_in_memory(event, args)
                    return
                self._change_on_disk(event, args)
        except Exception as exc:  # noqa: BLE001 - R15: never break the host
            debug(_VOICE, "idstitch: %s failed (%r); identity unchanged", event, exc)

    def _forgets_on_disk(self, event: str) -> bool:
        """Whether a forgetting must still be made durable though the log cannot take it (a
        newer format, damage an opted-out run may not heal, a disk fault): the dir may hold
        a user (R16). Once one forgetting is durable, the dir holds none (R14's one write)."""
        return (
            event in FORGETTINGS
            and self._dir_user is not None
            and self._state_dir is not None
            and self._runtime is Runtime.PERSISTENT
            and self._storage.state in (Storage.READ_ONLY, Storage.MEMORY)
        )

    def _change_on_disk(self, event: str, args: dict[str, Any]) -> None:
        journal = self._journal
        assert journal is not None
        self._warm_up()  # no import while holding the lock
        self._clear_lock_path(journal)
        read_only = self._storage.state is Storage.READ_ONLY
        applied = False
        alias: Decision | None = None
        # Known to be stuck (deferred): try briefly, so that calls queued behind this one in
        # other threads do not each wait the whole LOCK_WAIT again.
        wait = OPEN_WAIT if self._storage.state is Storage.DEFERRED else LOCK_WAIT
        try:
            with journal.log.locked().try_locked(wait) as held:
                self._ready_locked(read_only=read_only, held=held)
                self._apply_pending_locked()
                if not read_only and not self._opted_out and self._identity.consent == "disabled":
                    self._consent_off()  # another process recorded a disable meanwhile
                    read_only = self._storage.state is Storage.READ_ONLY
                before = self._identity
                applied = True
                if read_only:
                    self._apply_forgetting_read_only(event, args)
                    return
                alias = self._apply(event, args)
                if self._identity is not before:  # nothing changed: nothing to write
                    self._save_snapshot()
        except TimeoutError:
            self._storage.fire("lock_busy", "another process held the lock past the wait")
            self._defer(event, args)
        except (OSError, LogDamagedError, _UnwritableError) as exc:
            if applied:
                raise
            if self._storage.state not in (Storage.MEMORY, Storage.READ_ONLY):
                self._to_memory("disk_fault", repr(exc))
            self._defer(event, args)
        if alias is not None:  # recorded under the lock, handed over after it (no sink call
            self._hand_over(alias)  # holds another process up)

    def _ready_locked(self, *, read_only: bool, held: bool = True) -> None:
        """Under the file lock: continue from the disk, with everything other processes wrote.

        Raises :class:`TimeoutError` when the lock was not ``held``, and
        :class:`_UnwritableError` when the log is no longer this build's to write.
        """
        if not held:
            raise TimeoutError("another process holds the state dir's lock")
        if self._storage.state is Storage.DEFERRED:
            self._storage.fire("lock_taken")
            self._resume_from_disk()
        elif read_only:
            self._resume_from_disk()
        if not (self._catch_up() if self._log_verified else self._verify_locked()):
            raise _UnwritableError
        if self._identity.seq == 0:  # it opened before the log existed: start it now
            self._log_verified = True
            self._start_log(None)

    def _hand_over(self, alias: Decision) -> None:
        """Give the recorded alias to the sink; if it is not queued, record that (R9).

        The ``enqueue_failure`` must follow its alias record: it is appended
        only when no other process appended since. Otherwise that process has
        acted on the alias already; the device then stays counted as aliased
        (PostHog may miss that merge, but no device is ever aliased twice).
        """
        if self._send_alias(alias.fields["user_id"]):
            return
        self._alias_failures += 1
        recorded = (self._identity.seq, self._identity.h)
        journal = self._journal
        try:
            if journal is None or not self._on_disk():
                self._commit_failure()
                return
            with journal.log.locked():
                if self._catch_up() and (self._identity.seq, self._identity.h) == recorded:
                    self._commit_failure()
                    self._save_snapshot()
                    return
        except OSError as exc:
            debug(_VOICE, "idstitch: could not record the failed alias (%r)", exc)
        warn(
            _VOICE,
            "idstitch: the alias of device %s could not be queued and could not be undone in "
            "the log; the device stays counted as aliased",
            alias.fields["device_id"],
        )

    def _drop_alias(self, *, device_id: str, user_id: str, reason: str) -> bool:
        """Record that the delivery layer finally dropped the alias of ``device_id`` to
        ``user_id`` (R9): the device counts as not aliased from then on.

        Under the file lock, after folding what other processes appended: the
        alias must stand in the whole log (it was made, and neither undone nor
        dropped since), else nothing is recorded. ``True`` when the record was
        appended; ``False`` when there was nothing to record or it could not be
        (a busy lock past :data:`LOCK_WAIT`, a newer format, a disk fault: then
        nothing was appended). Never raises.
        """
        try:
            with self._lock:
                journal = self._journal
                if journal is None or not self._writes("alias_dropped"):
                    return False
                self._warm_up()  # no import while holding the lock
                self._clear_lock_path(journal)
                with journal.log.locked().try_locked(LOCK_WAIT) as held:
                    self._ready_locked(read_only=False, held=held)
                    self._apply_pending_locked()
                    aliases = self._standing_aliases()
                    decision = None
                    if aliases is not None and self._on_disk():
                        decision = self._decide(
                            "alias_dropped",
                            device_id=device_id,
                            user_id=user_id,
                            reason=reason,
                            aliases=aliases,
                        )
                    if decision is None or not self._commit(decision):
                        return False
                    self._save_snapshot()
                    return True
        except Exception as exc:  # noqa: BLE001 - R15: the caller is told by the return value
            debug(_VOICE, "idstitch: the dropped alias could not be recorded (%r)", exc)
            return False

    def _standing_aliases(self) -> dict[str, str] | None:
        """Every alias standing in the whole log, device -> user (under the file lock, after
        catching up); ``None`` when that fold does not end where this process stands."""
        journal = self._journal
        assert journal is not None
        result = _fold_file(journal.log.records())
        damaged = result.error is not None and not _is_torn(result.error)  # a tear: cut next
        if damaged or result.identity != self._identity:
            return None
        return result.aliases

    def _commit_failure(self) -> None:
        failure = self._decide("enqueue_failure")
        assert failure is not None
        self._commit(failure)

    def _resume_from_disk(self) -> None:
        """Continue from what the disk holds (this process's memory-only changes are dropped:
        a forgetting among them is in a pending file, applied next)."""
        journal = self._journal
        assert journal is not None
        self._identity = journal.identity if journal.identity is not None else _placeholder()
        self._memory = None

    def _defer(self, event: str, args: dict[str, Any]) -> None:
        """The change is made in memory; a forgetting is also made durable in a pending file."""
        self._write_pending(event, args.get("device_id"))
        self._apply_in_memory(event, args)

    def _write_pending(self, event: str, new_device_id: str | None) -> None:
        """Make a forgetting the log could not take durable in a pending file (R16)."""
        folder = self._state_dir
        if event not in FORGETTINGS or folder is None or self._runtime is not Runtime.PERSISTENT:
            return
        try:
            write_pending(folder, kind=event, new_device_id=new_device_id, at=self._now())
        except OSError as exc:
            warn(
                _VOICE,
                "idstitch: the %s could not be recorded in %s (%r); it holds for this run only",
                event,
                folder,
                exc,
            )
        else:
            self._dir_user = None  # forgotten for every later run

    def _apply_forgetting_read_only(self, event: str, args: dict[str, Any]) -> None:
        """Opted out: append only the forgetting, then keep the identity in memory."""
        decision = self._decide(event, **args)
        if decision is not None:  # the one write opt-out allows
            self._commit(decision, to_disk=True)
            self._save_snapshot(to_disk=True)
        self._dir_user = None

    def _catch_up(self) -> bool:
        """Fold what other processes appended (under the file lock); ``False`` if the log is
        no longer this build's to write (a newer format; damage that could not heal)."""
        journal = self._journal
        assert journal is not None
        identity = journal.identity
        from idstitch.events import START, Checkpoint

        if identity is not None and not holds(
            journal.log_path, identity.seq, identity.h, journal.offset
        ):
            # The log this process read was replaced (a heal by another process): read it anew.
            self._log_verified = False
            journal.identity, journal.offset = None, 0
            return self._verify_locked()
        since = START if identity is None else Checkpoint(identity.seq, identity.h, journal.offset)
        reader = journal.log.records(since=since)
        result = _fold_file(reader, identity)
        if result.error is not None and not _is_torn(result.error):
            if isinstance(result.error, NewerFormatError):
                self._storage.fire("newer_format", str(result.error))
                self._dir_user = self._identity.user_id
                self._journal = None
                return False
            if self._storage.state is Storage.READ_ONLY:
                return False  # opted out: never heal; the forgetting goes to a pending file
            self._rebuild_locked(journal, read_snapshot(journal.snapshot_path or ""), [])
            return self._storage.state is Storage.HEALTHY
        if result.identity is not None:
            journal.identity = self._identity = result.identity
        journal.offset = reader.checkpoint.offset
        journal.seen = _size(journal.log_path)
        return True

    def _apply_pending_locked(self) -> None:
        """Append the pending forgettings other processes could not write (under the lock)."""
        journal = self._journal
        if journal is None or journal.snapshot_path is None:
            return
        names = _names(journal.folder)
        _sweep(journal.folder, names)
        pending = read_pending(journal.folder, pending_names(names))
        if not pending:
            return
        logged = read_whole(journal.log_path)
        for entry in pending:
            if entry.kind == "logout":
                assert entry.new_device_id is not None
                if entry.new_device_id.encode() in logged:
                    continue  # applied already, by a process stopped before removing the file
                decision = self._decide("logout", device_id=entry.new_device_id)
            elif entry.kind == "consent":
                decision = self._decide("consent", telemetry=entry.telemetry)
            else:
                decision = self._decide("clear")
            if decision is not None and self._on_disk():
                self._commit(decision)
        if self._on_disk():
            self._save_snapshot()
            remove_pending(journal.folder, pending)

    def _apply_pending_in_memory(self, folder: str, names: list[str]) -> None:
        """Start from the identity the pending forgettings leave (this run cannot write them)."""
        entries = read_pending(folder, names)
        if any(entry.kind in FORGETTINGS for entry in entries):
            self._dir_user = None  # already forgotten durably, by the pending files
        for entry in entries:
            if entry.kind == "logout" and entry.new_device_id == self._identity.device_id:
                continue
            args: dict[str, Any] = {}
            if entry.kind == "logout":
                args = {"device_id": entry.new_device_id}
            elif entry.kind == "consent":
                args = {"telemetry": entry.telemetry}
            self._apply_in_memory(entry.kind, args)

    def _apply_in_memory(self, event: str, args: dict[str, Any]) -> None:
        if self._identity.seq == 0:
            self._start_in_memory()
        decision = self._decide(event, **args)
        if decision is not None:
            self._commit(decision)

    def _start_in_memory(self) -> None:
        """No identity at all yet: mint a device in a memory log."""
        self._memory = None
        decision = decide(
            None,
            "genesis",
            runtime=self._runtime.value,
            pid=os.getpid(),
            device_id=self._new_device_id(),
        )
        assert decision is not None
        self._commit(decision)

    def _to_memory(self, event: str, reason: str) -> None:
        """Take the ``event`` edge to memory: nothing more is written by this process."""
        self._storage.fire(event, reason)
        self._journal = None
        self._memory = None
        if self._identity.seq == 0:
            try:
                self._start_in_memory()
            except Exception as exc:  # noqa: BLE001 - R15
                debug(_VOICE, "idstitch: could not start in memory (%r)", exc)

    def _decide_runtime(self) -> str:
        # Not writing the state dir means not lasting: never alias then (rules R2, R15).
        return "persistent" if self.persisting else "ephemeral"

    def _decide(self, event: str, **args: Any) -> Decision | None:  # noqa: ANN401
        if event in USER_EVENTS:
            if getattr(self._sink, "sends", True) is False:
                args["may_alias"] = False  # a sink that refuses every alias: stamp, never try
            elif self._alias_failures >= ALIAS_ATTEMPTS and event == "response":
                # Each failed attempt costs two fsynced records: a sink that refused this
                # often will refuse again. The login command and the next process retry.
                args["may_alias"] = False
        return decide(
            self._identity if self._identity.seq else None,
            event,
            runtime=self._decide_runtime(),
            pid=os.getpid(),
            **args,
        )

    def _apply(self, event: str, args: dict[str, Any]) -> Decision | None:
        """Decide ``event`` again (state may have moved) and commit it (under the file lock).

        Returns the decision when it recorded an alias, for :meth:`_hand_over`
        once the lock is released.
        """
        decision = self._decide(event, **args)
        if decision is None:
            return None
        if not self._commit(decision):
            return None  # the disk failed and memory took over: the alias was re-decided away
        return decision if decision.alias else None

    def _verify_locked(self) -> bool:
        """Fold the whole log once per process before its first write (under the file lock).

        A snapshot is a cache anyone can edit, and one record cannot show that
        the device was aliased long before it (R3); damage before the tail is
        invisible to a start that reads only the end. So the first change of a
        process reads the whole log: damage is healed there (log-format.md,
        "Healing"), on the first run that writes, and never appended after.
        Changes are rare (a login, a logout, a new user), steady starts never
        pay for this. ``False`` when the log is no longer this build's to write.
        """
        journal = self._journal
        assert journal is not None
        reader = journal.log.records()
        result = _fold_file(reader)
        torn = _is_torn(result.error)
        if (
            result.error is not None
            and not torn
            and (
                isinstance(result.error, NewerFormatError)
                or self._storage.state is Storage.READ_ONLY
            )
        ):
            return self._catch_up()  # reports the newer format, or refuses (opted out)
        if (result.error is not None and not torn) or (
            torn and journal.snapshot_path is not None and self._storage.state is Storage.HEALTHY
        ):
            # Damage, or a cut-off write: the snapshot decides whether that was a crash.
            self._rebuild_locked(journal, read_snapshot(journal.snapshot_path or ""), [])
            return self._storage.state is Storage.HEALTHY
        self._log_verified = True
        if result.identity is not None and result.identity != journal.identity:
            if journal.identity is not None and result.identity.seq == journal.identity.seq:
                warn(
                    _VOICE,
                    "idstitch: the snapshot beside %s disagrees with its log; the log is used",
                    journal.log_path,
                )
            journal.identity = self._identity = result.identity
        journal.offset = reader.checkpoint.offset
        journal.seen = _size(journal.log_path)
        return True

    def _now(self) -> str:
        """The time now, as a record's ``at``: the injected clock's, or the system's."""
        from idstitch.events._codec import format_time, now_text

        return now_text() if self._clock is None else format_time(self._clock())

    def _commit(self, decision: Decision, *, to_disk: bool | None = None) -> bool:
        """Check the decided edge against the table, append the record and fold it in.

        ``False`` only when a write to the state dir failed: memory took over
        (``disk_fault``) and the event was re-decided there (an alias as a stamp).
        """
        check_decision(self._identity if self._identity.seq else None, decision)
        kind, fields = decision.kind, decision.fields
        at = self._now()
        on_disk = self._on_disk() if to_disk is None else to_disk
        try:
            record = self._current_log(to_disk=on_disk).append(kind, fields, at=at)
        except (OSError, LogDamagedError) as exc:
            if not on_disk:
                raise
            if self._storage.state in (Storage.READ_ONLY, Storage.HEALING):
                raise  # an opted-out forgetting (deferred), or a heal (heal_failed)
            self._to_memory("disk_fault", repr(exc))
            if kind in OPENING_KINDS or kind == "alias_dropped":
                return False  # nothing to make in memory instead
            if kind in FORGETTINGS:  # the log could not take it: a pending file may (R16)
                self._write_pending(kind, fields.get("new_device_id"))
            again = self._decide(kind, **_args_of(decision))
            if again is not None:
                self._commit(again)
            return False
        self._fold(record)
        if on_disk:
            journal = self._journal
            assert journal is not None
            end = journal.log.end
            journal.identity = self._identity
            if end is not None:
                journal.offset = journal.seen = end.offset  # the append removed any torn bytes
        return True

    def _fold(self, record: Mapping[str, Any]) -> None:
        result = fold((record,), self._identity if self._identity.seq else None)
        if result.error is not None or result.identity is None:
            raise AssertionError(f"a record this process decided does not fold: {result.error}")
        self._identity = result.identity

    def _send_alias(self, user_id: str) -> bool:
        try:
            return bool(self._sink.alias(user_id=user_id, device_id=self._identity.device_id))
        except Exception as exc:  # noqa: BLE001 - a sink failure is an enqueue failure (R9)
            debug(_VOICE, "idstitch: the sink raised on alias (%r): treated as not queued", exc)
            return False

    def _save_snapshot(self, *, to_disk: bool | None = None) -> None:
        journal = self._journal
        on_disk = self._on_disk() if to_disk is None else to_disk
        if not on_disk or journal is None or journal.snapshot_path is None:
            return
        identity = self._identity
        state = {
            **identity.as_dict(),
            "distinct_id": identity.distinct_id,
            "offset": journal.offset,
        }
        if journal.log.locked().held:
            _sweep(journal.folder, _names(journal.folder))
        try:
            write_snapshot(journal.snapshot_path, state)
        except OSError as exc:
            # The log holds the change; the next start folds it from there.
            debug(_VOICE, "idstitch: could not write the snapshot (%r)", exc)

    @staticmethod
    def _warm_up() -> None:
        """Import what a change needs before any lock is taken."""
        for name in _CHANGE_MODULES:
            __import__(name)

    def _after_fork_in_child(self) -> None:
        """A forked child starts with free in-process locks (another thread may have held them)."""
        self._lock = _thread.RLock()
        self._memory = None

    # ------------------------------------------------------------- sending

    def set_groups(self, **groups: str) -> None:
        """Groups (for example ``organization=...``, ``project=...``) put on every capture."""
        self._groups.update(groups)

    def capture(
        self,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        groups: Mapping[str, str] | None = None,
    ) -> bool:
        """Send ``event`` under the current distinct id; ``False`` if it was not queued.

        The events that merge persons (``$identify``, ``$create_alias``,
        ``$merge_dangerously``) are refused: idstitch alone decides merges (R3, R10).
        Never raises.
        """
        try:
            if event in _MERGING_EVENTS:
                warn(_VOICE, "idstitch: capture(%r) refused: idstitch alone merges persons", event)
                return False
            identity = self._identity
            every = self._every
            if every is None:  # once per process: a start that captures nothing pays nothing
                from ._properties import every_event

                every = self._every = every_event(*self._about)
            props = {**every, **(properties or {})}
            props.setdefault("$device_id", identity.device_id)
            merged = {**self._groups, **(groups or {})}
            return bool(
                self._sink.capture(
                    distinct_id=identity.distinct_id,
                    event=event,
                    properties=props,
                    groups=merged,
                )
            )
        except Exception as exc:  # noqa: BLE001 - R15
            debug(_VOICE, "idstitch: capture of %r failed (%r)", event, exc)
            return False

    def command(self, name: str, *, flush_timeout: float = 2.0) -> Command:
        """Context manager (and decorator) that sends ``cli_command_executed`` at exit (R11).

        It shows the ``notice`` given to :meth:`open` as it starts; inside a whole-app run
        (:func:`idstitch.instrument`) it sends nothing: that run sends the one event.
        """
        from ._command import Command

        return Command(self, name, flush_timeout)

    def first_run_notice(self, text: str | None = None, *, stream: Any = None) -> bool:  # noqa: ANN401
        """Print the host's telemetry notice to stderr once per machine; ``True`` if printed.

        ``text`` defaults to the ``notice`` given to :meth:`open`. Only when
        ``stream`` (stderr by default) is a terminal; never in CI or another
        ephemeral runtime (nobody reads it there), never when opted out, never
        on stdout. The state dir records that it was shown (``notice-shown``),
        so it appears once per state dir. Once shown, events held back by
        ``notice_before_sending`` flow from then on.
        """
        import sys

        text = self._notice if text is None else text
        stream = sys.stderr if stream is None else stream
        if text is None or self._opted_out or self._state_dir is None:
            return False
        if ci_found(self._env) is not None:
            return False
        from ._notice import is_terminal, show_notice

        if not self.persisting or not is_terminal(stream):
            return False
        shown = show_notice(self._state_dir, self._identity.device_id, text, stream)
        if shown and self._held is not None:
            self._sink, self._held = self._held, None
        return shown

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what the sink queued, waiting at most about ``timeout`` seconds."""
        try:
            self._sink.flush(timeout)
        except Exception as exc:  # noqa: BLE001 - R15
            debug(_VOICE, "idstitch: the sink raised on flush (%r)", exc)

    def __repr__(self) -> str:
        return (
            f"IdentityStitch(state={self.state.value}, distinct_id={self.distinct_id!r}, "
            f"runtime={self._runtime.value}, storage={self._storage.state})"
        )


class _UnwritableError(Exception):
    """The log is no longer this build's to write (newer format, or damage not healed)."""


class _LiveStitches:
    """Weak references to every live service, for the fork handler."""

    def __init__(self) -> None:
        self._refs: list[Any] = []
        self._registered = False

    def append(self, stitch: IdentityStitch) -> None:
        import _weakref  # the C module: ``weakref`` itself costs start-up time

        if not self._registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.after_fork_in_child)
            self._registered = True
        self._refs = [ref for ref in self._refs if ref() is not None]
        self._refs.append(_weakref.ref(stitch))

    def after_fork_in_child(self) -> None:
        for ref in self._refs:
            stitch = ref()
            if stitch is not None:
                stitch._after_fork_in_child()


_LIVE_STITCHES = _LiveStitches()


def _int_id(user_id: int) -> str:
    """An integer user id as its decimal text; one too long for an id is refused (R13)."""
    if abs(user_id) >= 10**MAX_ID_LENGTH:
        raise IllegalUserIdError(user_id, f"a user id is at most {MAX_ID_LENGTH} characters")
    return str(user_id)


def _args_of(decision: Decision) -> dict[str, Any]:
    """The decide() arguments that re-decide ``decision``'s event in memory."""
    fields = decision.fields
    if decision.kind in USER_EVENTS:
        return {"user_id": fields["user_id"]}
    if decision.kind == "logout":
        return {"device_id": fields["new_device_id"]}
    if decision.kind == "consent":
        return {"telemetry": fields["telemetry"]}
    return {}


def _attach(sink: object, attached: Mapping[str, Any], *, opted_out: bool) -> None:
    """Tell a sink with a spool where it is and whether it may be used (``attach``); under
    opt-out it deletes what the spool holds. Never raises (R15)."""
    attach = getattr(sink, "attach", None)
    if attach is None:
        return
    try:
        attach(**attached, opted_out=opted_out)
    except Exception as exc:  # noqa: BLE001 - R15
        debug(_VOICE, "idstitch: the sink could not attach to %s (%r)", attached, exc)


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder or ".")
    except OSError:
        return []


def _fold_file(records: Iterable[Record], start: Identity | None = None) -> ReplayResult:
    """Fold records read from a log file; a file that does not exist (yet) folds as empty."""
    try:
        return fold(records, start)
    except FileNotFoundError:
        return fold((), start)


def _size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _is_torn(error: object) -> bool:
    return isinstance(error, LogDamagedError) and error.cause == "torn-tail"


def _placeholder() -> Identity:
    """The identity before the first record (replaced by the first commit)."""
    return Identity(
        state=State.ANONYMOUS,
        device_id="-",
        user_id=None,
        linked_user=None,
        undo=None,
        seq=0,
        h="0" * 32,
    )


def _from_snapshot(snapshot: SnapshotRead, journal: _Journal) -> str | None:
    """Start from the snapshot when it names a record of the log (``journal`` is filled in).

    The steady state: the log ends with the very record the snapshot names
    (only the log's last line is read). When the log has grown since, just
    the new records are folded under the lock (``"stale"``). ``None``: the
    caller replays the whole log.
    """
    identity = snapshot_identity(snapshot)
    offset = snapshot_offset(snapshot)
    if identity is None or not offset:
        return None
    if ends_with(journal.log_path, identity.seq, identity.h, offset):
        # The named record is the log's last (what follows it, if anything, is a cut-off
        # write of the next record, which the next change's append removes).
        journal.identity, journal.offset, journal.seen = identity, offset, _size(journal.log_path)
        return "steady"
    size = _size(journal.log_path)
    if size > offset:
        from idstitch.events import Checkpoint
        from idstitch.store._log import FileLog

        reader = FileLog(journal.log_path, light=True).records(
            since=Checkpoint(identity.seq, identity.h, offset)
        )
        result = fold(reader, identity)
        grown = reader.checkpoint.offset != offset and result.identity is not None
        if grown and (result.error is None or _is_torn(result.error)):
            # Stale but sound: start from the records after it (a run that may write reads
            # the whole log under the lock next, and writes the snapshot anew).
            assert result.identity is not None
            journal.identity, journal.offset = result.identity, reader.checkpoint.offset
            journal.seen = size
            return "stale"
    return None


def _sweep(folder: str, names: list[str]) -> None:
    """Have the store remove the temporary files its writers left when killed mid-write (under
    the file lock; the store knows which are its own, and which may still be a live writer's)."""
    from idstitch.store._files import sweep_state_dir

    sweep_state_dir(folder, names)


def _corrupt(problem: str) -> SnapshotRead:
    from idstitch.store._snapshot import SnapshotRead

    return SnapshotRead("corrupt", problem=problem)
