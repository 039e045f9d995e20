"""The stitch owner: one :class:`IdentityStitch` per process, shared by every transport.

It holds the identity in memory, decides every change through the machine
(:mod:`._decide`, :mod:`._table`), appends the change to the log and folds
it back (:mod:`._fold`), and hands the one alias to the sink. Because the
gate lives here, no call site can forget it.

Start-up reads only the snapshot and the last line of the log; when they
agree nothing else is read, nothing is written and none of ``posthog``,
``pydantic``, ``transitions`` or ``orjson`` is imported. A change takes
the thread lock, then (persistent runtime) the cross-process file lock,
re-reads what other processes appended, decides again and only then
writes: so threads, asyncio tasks and processes sharing a state dir alias
at most once (rule R5).

Nothing here raises into the host but :class:`IllegalUserIdError` for an
illegal user id (R13): I/O faults and damaged files degrade to in-memory
behaviour with one debug log line (R15).
"""

from __future__ import annotations

import _thread
import os
import time

from idstitch.adapters.runtime import Runtime, detect_runtime, is_truthy, runtime_override
from idstitch.events._errors import IdentityError, IllegalUserIdError, LogDamagedError
from idstitch.events._ids import MAX_ID_LENGTH, check_device_id, check_user_id, user_id_problem
from idstitch.store._fs import peek_end
from idstitch.store._snapshot import read_snapshot, write_snapshot

from ._decide import Decision, decide
from ._dirs import default_state_dir, untrusted_reason
from ._fold import Identity, ReplayResult, fold
from ._table import State

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from datetime import datetime
    from typing import Any

    from idstitch.adapters.sinks import Sink
    from idstitch.events import Record
    from idstitch.store import FileLog, IdentityLog, SnapshotRead

    from ._live import LiveMachine

__all__ = ["LOG_NAME", "SNAPSHOT_NAME", "IdentityStitch"]

#: File names inside a state dir.
LOG_NAME = "identity.jsonl"
SNAPSHOT_NAME = "telemetry.json"

_H_SLICE = slice(-35, -3)  # the hash inside a line's '..."h":"<32 hex>"}\n'

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE

#: How many aliases a process's responses try before they only stamp (R9).
ALIAS_ATTEMPTS = 3

#: Events that merge persons in PostHog: only the service's own alias may do that.
_MERGING_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously"})

#: What a state file the log does not account for is kept as, by its status.
_KEPT_ASIDE = {"foreign": ".pre-idstitch", "corrupt": ".corrupt"}


def _debug(message: str, *args: object) -> None:
    import logging

    logging.getLogger("idstitch").debug(message, *args)


def _warn(message: str, *args: object) -> None:
    import logging

    logging.getLogger("idstitch").warning(message, *args)


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _new_device_id() -> str:
    import uuid

    return str(uuid.uuid4())


class _Disk:
    """The files this process may write: a state dir's, or an ephemeral run's audit log.

    ``offset`` is the byte offset just past the last record this process
    has folded; ``seen`` the log's size when this process last read it (more
    than ``offset`` by the bytes of a torn last write, which the next append
    removes). ``snapshot_path`` is ``None`` for an audit log (no snapshot,
    no alias: the run does not last). The :class:`FileLog` is built on first
    use, so a start that changes nothing never imports the log module.
    """

    __slots__ = ("_log", "log_path", "offset", "seen", "snapshot_path")

    def __init__(self, log_path: str, snapshot_path: str | None, offset: int) -> None:
        self.log_path = log_path
        self.snapshot_path = snapshot_path
        self.offset = offset
        self.seen = offset
        self._log: FileLog | None = None

    @property
    def log(self) -> FileLog:
        if self._log is None:
            from idstitch.store._lock import LOCK_WAIT
            from idstitch.store._log import FileLog

            self._log = FileLog(self.log_path, lock_timeout=LOCK_WAIT)
        return self._log


class _DiskUnusableError(Exception):
    """The state dir's log cannot be appended to (damaged, or folded to a different end)."""


class IdentityStitch:
    """The identity of one host CLI process; create it with :meth:`open`."""

    def __init__(
        self,
        *,
        identity: Identity,
        log: IdentityLog | None,
        disk: _Disk | None,
        runtime: Runtime,
        sink: Sink,
        opted_out: bool,
        state_dir: str | None,
        clock: Callable[[], datetime] | None = None,
        new_device_id: Callable[[], str] | None = None,
    ) -> None:
        self._identity = identity
        self._log = log
        self._disk = disk
        self._runtime = runtime
        self._sink = sink
        self._opted_out = opted_out
        self._state_dir = state_dir
        self._clock = clock or _now
        self._new_device_id = new_device_id or _new_device_id
        self._lock = _thread.RLock()
        self._groups: dict[str, str] = {}
        self._live: LiveMachine | None = None
        #: Aliases that failed to queue in this process (R9: each is retried later).
        self._alias_failures = 0
        #: Whether the identity is the whole log's fold (not a snapshot's word for it).
        self._log_verified = False

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
        audit_log: str | os.PathLike[str] | None = None,
        root: str = "/",
        is_tty: bool | None = None,
        clock: Callable[[], datetime] | None = None,
        new_device_id: Callable[[], str] | None = None,
    ) -> IdentityStitch:
        """The identity of this process, read from ``state_dir`` (or ``app``'s default dir).

        ``runtime`` (or ``IDSTITCH_RUNTIME``) overrides detection. In an
        ephemeral runtime nothing is written unless ``audit_log`` names a
        file to keep the log in. ``DO_NOT_TRACK`` or any of
        ``opt_out_vars`` set truthy: nothing is sent and nothing written.
        ``root``, ``is_tty``, ``clock`` and ``new_device_id`` are for tests.
        Never raises for I/O faults or damaged files: it falls back to memory.
        """
        env = os.environ if env is None else env
        folder, problem = _state_folder(app, state_dir, env)
        opted_out = any(is_truthy(env.get(name)) for name in ("DO_NOT_TRACK", *opt_out_vars))
        log_path = os.path.join(folder, LOG_NAME)
        snapshot_path = os.path.join(folder, SNAPSHOT_NAME)
        if isinstance(runtime, str):
            runtime = Runtime(runtime)
        if runtime is None:
            runtime = runtime_override(env)
        if runtime is None:
            has_state = problem is None and (
                os.path.exists(log_path) or os.path.exists(snapshot_path)
            )
            runtime = detect_runtime(env=env, root=root, is_tty=is_tty, has_state=has_state)
        if opted_out or sink is None:
            from idstitch.adapters.sinks import NullSink

            sink = NullSink(queued=not opted_out, sends=False)
        stitch = cls(
            identity=_placeholder(),
            log=None,
            disk=None,
            runtime=runtime,
            sink=sink,
            opted_out=opted_out,
            state_dir=folder if problem is None else None,
            clock=clock,
            new_device_id=new_device_id,
        )
        try:
            if problem is not None:
                stitch._start_in_memory(None)
            elif runtime is Runtime.EPHEMERAL and audit_log is not None and not opted_out:
                stitch._load_audit_log(os.fspath(audit_log))
            else:
                writable = runtime is Runtime.PERSISTENT and not opted_out
                stitch._load_state_dir(log_path, snapshot_path, writable=writable)
        except IllegalUserIdError:
            raise
        except Exception as exc:  # noqa: BLE001 - R15: a fault here must not break the host
            _debug("idstitch: cannot use the state dir %s (%r); identity is in memory", folder, exc)
            stitch._disk = None
            stitch._start_in_memory(stitch._identity if stitch._identity.seq else None)
        return stitch

    def _start_in_memory(
        self, identity: Identity | None, snapshot: SnapshotRead | None = None
    ) -> None:
        """Keep the identity in memory only: continue ``identity``, or start a new log."""
        from idstitch.events import START, Checkpoint
        from idstitch.store import MemoryLog

        self._disk = None
        if identity is None:
            self._log = MemoryLog()
            self._start_log(snapshot)
            return
        self._identity = identity
        self._log = MemoryLog(Checkpoint(identity.seq, identity.h, 0) if identity.seq else START)

    def _load_audit_log(self, path: str) -> None:
        """Ephemeral with an audit log: that file is the log (there is no snapshot).

        Several runs may share one audit log (parallel CI jobs on one machine):
        it is read, and every change later decided, under its file lock after
        folding what the others appended, exactly as a state dir's log is.
        """
        from idstitch.store._snapshot import SnapshotRead

        disk = _Disk(path, None, 0)
        with disk.log.locked():
            self._rebuild_from(disk.log, SnapshotRead("missing"), disk)

    def _load_state_dir(self, log_path: str, snapshot_path: str, *, writable: bool) -> None:
        snapshot = read_snapshot(snapshot_path)
        identity, offset, stale, size = _from_snapshot(snapshot, log_path)
        if identity is not None and offset is not None:
            # The snapshot names the log's last record (or its tail folded cleanly).
            if not writable:
                self._start_in_memory(identity)
                return
            self._identity = identity
            self._disk = _Disk(log_path, snapshot_path, offset)
            self._disk.seen = size
            if stale:
                with self._disk.log.locked():
                    self._catch_up()
                    self._save_snapshot()
            return
        if snapshot.status == "ok" and _snapshot_identity(snapshot) is None:
            snapshot = _corrupt("it does not hold an identity a log could have written")
        if (
            snapshot.status == "foreign"
            and snapshot.data.get("enabled") is False
            and not (os.path.exists(log_path))
        ):
            # The host's own state file says telemetry is off: honour it as an opt-out.
            self._opted_out = True
            from idstitch.adapters.sinks import NullSink

            self._sink = NullSink(queued=False)
            writable = False
        if snapshot.status == "newer":
            _warn(
                "idstitch: %s was written by a newer idstitch; identity is in memory", snapshot_path
            )
            writable = False
        self._rebuild(log_path, snapshot_path, snapshot, writable=writable)

    def _rebuild(
        self, log_path: str, snapshot_path: str, snapshot: SnapshotRead, *, writable: bool
    ) -> None:
        """The slow start: replay the whole log (the snapshot is missing, stale or unusable)."""
        from idstitch.store._log import FileLog

        log = FileLog(log_path)
        if not writable:
            self._rebuild_from(log, snapshot, None)
            return
        disk = _Disk(log_path, snapshot_path, 0)
        with disk.log.locked():
            self._rebuild_from(disk.log, snapshot, disk)

    def _rebuild_from(self, log: FileLog, snapshot: SnapshotRead, disk: _Disk | None) -> None:
        held = _snapshot_identity(snapshot)
        reader = log.records()
        hashes: set[str] = set()
        result = _fold_file(_noting_hashes(reader, hashes))
        if held is not None and held.h in hashes and held.seq > reader.checkpoint.seq:
            # It names a record of this log under a later seq: the snapshot is wrong, not the log.
            _warn(
                "idstitch: the snapshot beside %s names one of its records under another seq; "
                "it is ignored and rebuilt from the log",
                log.path,
            )
            held = None
        if result.error is not None and not _is_torn(result.error):
            _warn(
                "idstitch: the identity log %s is damaged (%s); it is left as it is and "
                "identity is in memory (see `idstitch replay`)",
                log.path,
                result.error,
            )
            self._start_in_memory(_later(result.identity, held), snapshot)
            return
        if (
            held is not None
            and held.h not in hashes
            and reader.checkpoint.offset >= _snapshot_offset(snapshot)
        ):
            # Not a log that lost its end (that would be shorter): another log altogether.
            _warn(
                "idstitch: the snapshot beside %s names no record of it; it is ignored and "
                "rebuilt from the log",
                log.path,
            )
            held = None
        if held is not None and (result.identity is None or held.seq > result.identity.seq):
            _warn(
                "idstitch: the identity log %s ends at seq %d but its snapshot saw seq %d: "
                "records were lost; nothing is rewritten and identity is in memory",
                log.path,
                0 if result.identity is None else result.identity.seq,
                held.seq,
            )
            self._start_in_memory(held)
            return
        if disk is None:
            self._start_in_memory(result.identity, snapshot)
            return
        disk.offset = reader.checkpoint.offset
        disk.seen = _size(log.path)
        self._disk = disk
        self._log = disk.log
        self._log_verified = True  # this identity is the whole log's fold
        if result.identity is None:
            self._start_log(snapshot)
        else:
            self._identity = result.identity
            self._save_snapshot()

    def _start_log(self, snapshot: SnapshotRead | None) -> None:
        """Write the first record: adopt a foreign state file, or mint a device."""
        adopted = _foreign_identity(snapshot) if snapshot is not None else None
        pid = os.getpid()
        runtime = self._runtime.value
        if snapshot is not None and snapshot.status in _KEPT_ASIDE:
            # Adopted or not (its device id may be unusable), the host's file is kept.
            self._keep_aside(_KEPT_ASIDE[snapshot.status])
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
        with self._lock:
            self._commit(decision)
            self._save_snapshot()

    def _keep_aside(self, suffix: str) -> None:
        """Keep a state file that is about to be replaced, so that nothing is lost.

        It is renamed to ``telemetry.json<suffix>``, or ``<suffix>.2``, ``.3``, ... when
        an earlier file was kept under that name: no kept file is ever replaced.
        """
        if self._disk is None or self._disk.snapshot_path is None:
            return
        path = self._disk.snapshot_path
        if not os.path.lexists(path):
            return
        kept = path + suffix
        number = 1
        while os.path.lexists(kept):
            number += 1
            kept = f"{path}{suffix}.{number}"
        try:
            os.rename(path, kept)
        except OSError as exc:
            _debug("idstitch: could not keep %s as %s: %r", path, kept, exc)

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
    def persisting(self) -> bool:
        """Whether changes are written to the state dir (persistent and healthy)."""
        return self._disk is not None and self._disk.snapshot_path is not None

    @property
    def opted_out(self) -> bool:
        """Whether ``DO_NOT_TRACK`` or a host opt-out variable is set (rule R14)."""
        return self._opted_out

    @property
    def state_dir(self) -> str | None:
        """The state dir in use, if any."""
        return self._state_dir

    @property
    def log(self) -> IdentityLog:
        """The log this process appends to (a :class:`MemoryLog` when nothing is written)."""
        return self._current_log()

    def _current_log(self) -> IdentityLog:
        # Resolved on first use: a start that changes nothing never loads the log module.
        if self._log is None:
            if self._disk is not None:
                self._log = self._disk.log
            else:
                self._start_in_memory(self._identity if self._identity.seq else None)
                assert self._log is not None
        return self._log

    @property
    def identity(self) -> Identity:
        """The whole folded identity (for audits and tests)."""
        return self._identity

    # ------------------------------------------------------------- changing

    def observe_authenticated_response(self, user_id: str | int) -> None:
        """An authenticated response named ``user_id``: stamp, and alias if this is the first.

        Raises :class:`IllegalUserIdError` for an illegal id (nothing changes).
        An integer id is taken as its decimal text, as PostHog's client does.
        The steady state (the same user again) takes no lock and writes nothing.
        """
        self._user_event("response", user_id)

    def login(self, user_id: str | int) -> None:
        """The login command learned ``user_id``; a no-op if the response hook already stitched."""
        self._user_event("login", user_id)

    def logout(self) -> None:
        """Forget the user and rotate the device id, in memory and on disk (rule R7)."""
        self._change("logout")

    def clear_distinct_id(self) -> None:
        """Forget the user after a transient failure; keep the device (rule R8)."""
        self._change("clear")

    def _user_event(self, kind: str, user_id: str | int) -> None:
        if type(user_id) is int:  # not bool: True is no id
            user_id = _int_id(user_id)
        check_user_id(user_id)
        try:
            if self._decide(kind, user_id=user_id) is None and not self._log_moved():
                return  # the steady state: no lock, no write, one stat
        except Exception as exc:  # noqa: BLE001 - R15: never break the host
            _debug("idstitch: %s could not be decided (%r)", kind, exc)
            return
        self._change(kind, user_id=user_id)

    def _log_moved(self) -> bool:
        """Whether another process appended since this one last read (R5: decide on the tail).

        A long-lived process that saw the same user before must not answer
        "nothing to do" from memory when, say, another process has logged out.
        """
        disk = self._disk
        if disk is None:
            return False
        try:
            return os.stat(disk.log_path).st_size != disk.seen
        except OSError:
            return True  # let the locked path find out, and fall back to memory if it must

    def _decide_runtime(self) -> str:
        # Not writing the state dir means not lasting: never alias then (rules R2, R15).
        return "persistent" if self.persisting else "ephemeral"

    def _decide(self, event: str, **args: Any) -> Decision | None:  # noqa: ANN401
        if event == "logout":
            args["device_id"] = self._new_device_id()
        elif getattr(self._sink, "sends", True) is False:
            args["may_alias"] = False  # a sink that refuses every alias: stamp, never try
        elif self._alias_failures >= ALIAS_ATTEMPTS and event == "response":
            # Each failed attempt costs two fsynced records: a sink that refused this
            # often will refuse again. The login command and the next process retry.
            args["may_alias"] = False
        return decide(
            self._identity, event, runtime=self._decide_runtime(), pid=os.getpid(), **args
        )

    def _change(self, event: str, **args: Any) -> None:  # noqa: ANN401
        """Decide and make one change: under the thread lock, and the file lock when persisting."""
        try:
            with self._lock:
                if self._disk is None:
                    self._apply(event, **args)
                    return
                applied = False
                try:
                    with self._disk.log.locked():
                        before = self._identity
                        self._catch_up()
                        applied = True
                        self._apply(event, **args)
                        if self._identity is not before:  # nothing changed: nothing to write
                            self._save_snapshot()
                except (OSError, LogDamagedError, _DiskUnusableError) as exc:
                    if applied:
                        raise
                    self._degrade(exc)
                    self._apply(event, **args)
        except IllegalUserIdError:
            raise
        except Exception as exc:  # noqa: BLE001 - R15: never break the host
            _debug("idstitch: %s failed (%r); identity unchanged", event, exc)

    def _catch_up(self) -> None:
        """Fold what other processes appended since this one last read (under the file lock)."""
        from idstitch.events import Checkpoint

        assert self._disk is not None
        identity = self._identity
        since = Checkpoint(identity.seq, identity.h, self._disk.offset)
        reader = self._disk.log.records(since=since)
        result = _fold_file(reader, identity if identity.seq else None)
        if result.error is not None and not _is_torn(result.error):
            raise _DiskUnusableError(str(result.error))
        if result.identity is not None:
            self._identity = result.identity
        self._disk.offset = reader.checkpoint.offset
        self._disk.seen = _size(self._disk.log_path)
        self._log = self._disk.log

    def _apply(self, event: str, **args: Any) -> None:  # noqa: ANN401
        """Decide ``event`` again (state may have moved), commit it, hand the alias over."""
        decision = self._decide(event, **args)
        if decision is not None and decision.alias and not self._log_verified:
            decision = self._decide_on_the_log(event, args)
        if decision is None:
            return
        if not self._commit(decision):
            return  # the disk failed and memory took over: the alias was re-decided away
        if decision.alias and not self._send_alias(decision.fields["user_id"]):
            self._alias_failures += 1
            failure = self._decide("enqueue_failure")
            assert failure is not None
            self._commit(failure)

    def _decide_on_the_log(self, event: str, args: dict[str, Any]) -> Decision | None:
        """Decide an alias on the whole log's fold, not on the snapshot it started from.

        A snapshot is a cache anyone can edit, and one record cannot show that
        the device was aliased long before it (R3). An alias is decided at most
        once per device, so folding the whole log then costs nothing that
        matters, and only once per process (under the file lock).
        """
        assert self._disk is not None
        result = _fold_file(self._disk.log.records())
        self._log_verified = True
        if result.error is not None and not _is_torn(result.error):
            # Damage before the tail, which start-up does not read: never append after
            # it, and never alias on what it hides. The change is made in memory.
            _warn(
                "idstitch: the identity log %s is damaged (%s); it is left as it is and "
                "identity is in memory (see `idstitch replay`)",
                self._disk.log_path,
                result.error,
            )
            self._degrade(_DiskUnusableError(str(result.error)))
            return self._decide(event, **args)
        if result.identity is not None and result.identity != self._identity:
            _warn(
                "idstitch: the snapshot beside %s disagrees with its log; the log is used",
                self._disk.log_path,
            )
            self._identity = result.identity
        return self._decide(event, **args)

    def _fire(self, decision: Decision) -> None:
        """Move the live machine along the decided edge (it refuses any edge the table lacks)."""
        if self._live is None:
            from ._live import LiveMachine

            self._live = LiveMachine()
        identity = self._identity
        self._live.reset_to(identity.state if identity.seq else "initial")
        row = decision.transition
        reached = self._live.fire(row.event, row.guard, seq=identity.seq + 1)
        if reached is not row.target:
            raise AssertionError(f"the live machine reached {reached}, the table says {row}")

    def _commit(self, decision: Decision) -> bool:
        """Fire the live machine, append the decided record and fold it in.

        ``False`` only when a persistent alias could not be written: memory
        then took over and the event was re-decided there (as a stamp).
        """
        self._fire(decision)
        kind, fields = decision.kind, decision.fields
        at = _format(self._clock())
        try:
            record = self._current_log().append(kind, fields, at=at)
        except (OSError, LogDamagedError) as exc:
            if self._disk is None:
                raise
            self._degrade(exc)
            if fields.get("alias"):
                again = self._decide(kind, user_id=fields["user_id"])
                if again is not None:
                    self._commit(again)
                return False
            record = self._current_log().append(kind, fields, at=at)
        self._fold(record)
        end = self._current_log().end
        if self._disk is not None and end is not None:
            self._disk.offset = self._disk.seen = end.offset  # the append removed any torn bytes
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
            _debug("idstitch: the sink raised on alias (%r): treated as not queued", exc)
            return False

    def _degrade(self, exc: BaseException) -> None:
        """Stop writing: keep the identity in memory from here on (rule R15)."""
        from idstitch.events import START, Checkpoint
        from idstitch.store import MemoryLog

        _debug("idstitch: cannot write the state dir (%r); identity is in memory from now on", exc)
        identity = self._identity
        self._disk = None
        self._log = MemoryLog(Checkpoint(identity.seq, identity.h, 0) if identity.seq else START)

    def _save_snapshot(self) -> None:
        if self._disk is None or self._disk.snapshot_path is None:
            return
        identity = self._identity
        state = {
            **identity.as_dict(),
            "distinct_id": identity.distinct_id,
            "offset": self._disk.offset,
        }
        if self._disk.log.locked().held:
            _sweep_temporaries(self._disk.snapshot_path)
        try:
            write_snapshot(self._disk.snapshot_path, state)
        except OSError as exc:
            # The log holds the change; the next start folds it from there.
            _debug("idstitch: could not write the snapshot (%r)", exc)

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
        """
        if event in _MERGING_EVENTS:
            _warn("idstitch: capture(%r) refused: idstitch alone merges persons (R3, R10)", event)
            return False
        identity = self._identity
        props = dict(properties or {})
        props.setdefault("$device_id", identity.device_id)
        merged = {**self._groups, **(groups or {})}
        try:
            return bool(
                self._sink.capture(
                    distinct_id=identity.distinct_id,
                    event=event,
                    properties=props,
                    groups=merged,
                )
            )
        except Exception as exc:  # noqa: BLE001 - R15
            _debug("idstitch: the sink raised on capture (%r)", exc)
            return False

    def command(self, name: str, *, flush_timeout: float = 2.0) -> _Command:
        """Context manager (and decorator) that sends ``cli_command_executed`` at exit (R11)."""
        return _Command(self, name, flush_timeout)

    def first_run_notice(self, text: str, *, stream: Any = None) -> bool:  # noqa: ANN401
        """Print the host's telemetry notice to stderr once per machine; ``True`` if printed.

        Never in an ephemeral runtime (CI, containers: nobody reads it there),
        never when opted out, never on stdout. The state dir records that it
        was shown (``notice-shown``), so it appears once per state dir.
        """
        if not self.persisting or self._opted_out or self._state_dir is None:
            return False
        import sys

        marker = os.path.join(self._state_dir, "notice-shown")
        try:
            from idstitch.store._fs import open_file

            fd = open_file(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return False
        except OSError as exc:
            _debug("idstitch: cannot record the notice (%r); not shown", exc)
            return False
        try:
            os.write(fd, f"{self._identity.device_id}\n".encode())
            print(text, file=stream if stream is not None else sys.stderr, flush=True)
        except (OSError, ValueError) as exc:  # a full disk, a closed or broken stderr
            _debug("idstitch: the notice could not be recorded or shown (%r)", exc)
            import contextlib

            with contextlib.suppress(OSError):  # not shown, so not marked: the next run tries
                os.unlink(marker)
            return False
        finally:
            os.close(fd)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what the sink queued, waiting at most about ``timeout`` seconds."""
        try:
            self._sink.flush(timeout)
        except Exception as exc:  # noqa: BLE001 - R15
            _debug("idstitch: the sink raised on flush (%r)", exc)

    def __repr__(self) -> str:
        return (
            f"IdentityStitch(state={self.state.value}, distinct_id={self.distinct_id!r}, "
            f"runtime={self._runtime.value}, persisting={self.persisting})"
        )


class _Command:
    """Times a command and reports it with the identity current at its end."""

    def __init__(self, stitch: IdentityStitch, name: str, flush_timeout: float) -> None:
        self._stitch = stitch
        self._name = name
        self._flush_timeout = flush_timeout
        self._started = 0.0

    def __enter__(self) -> _Command:
        self._started = time.monotonic()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        duration_ms = round((time.monotonic() - self._started) * 1000)
        self._stitch.capture(
            "cli_command_executed",
            {"command": self._name, "duration_ms": duration_ms, "exit_code": _exit_code(exc)},
        )
        self._stitch.close(self._flush_timeout)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        if _is_coroutine_function(func):
            # The command runs when the coroutine is awaited: time and report it then.
            @functools.wraps(func)
            async def waiting(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
                with _Command(self._stitch, self._name, self._flush_timeout):
                    return await func(*args, **kwargs)

            return waiting

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            with _Command(self._stitch, self._name, self._flush_timeout):
                return func(*args, **kwargs)

        return wrapper


def _is_coroutine_function(func: object) -> bool:
    """``async def`` (checked on the code object: ``inspect`` costs start-up)."""
    code = getattr(func, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


def _int_id(user_id: int) -> str:
    """An integer user id as its decimal text; one too long for an id is refused (R13)."""
    if abs(user_id) >= 10**MAX_ID_LENGTH:
        raise IllegalUserIdError(user_id, f"a user id is at most {MAX_ID_LENGTH} characters")
    return str(user_id)


def _state_folder(
    app: str | None, state_dir: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[str, str | None]:
    """The state dir to use, and why it must not be used (``None``: it may)."""
    if state_dir is None:
        if app is None:
            raise TypeError("IdentityStitch.open needs app= or state_dir=")
        try:
            state_dir = default_state_dir(app, env)
        except ValueError as exc:  # nowhere that lasts: never under the working dir
            _debug("idstitch: no default state dir: %s; identity is in memory", exc)
            return "", str(exc)
    folder = os.fspath(state_dir)
    problem = untrusted_reason(folder)
    if problem is not None:
        _warn("idstitch: not using the state dir %s: %s; identity is in memory", folder, problem)
    return folder, problem


def _exit_code(exc: BaseException | None) -> int:
    """The exit code a command ends with: 0, ``SystemExit``'s code, click's ``Exit``, 130 or 1."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        return int(code) if isinstance(code, int) else 1  # sys.exit(False) exits 0
    click_code = getattr(exc, "exit_code", None)  # click.exceptions.Exit / typer.Exit
    if type(click_code) is int:
        return click_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


def _format(when: datetime) -> str:
    from idstitch.events import format_time

    return format_time(when)


def _fold_file(records: Iterable[Record], start: Identity | None = None) -> ReplayResult:
    """Fold records read from a log file; a file that does not exist (yet) folds as an empty log."""
    try:
        return fold(records, start)
    except FileNotFoundError:
        return fold((), start)


def _size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _snapshot_offset(snapshot: SnapshotRead) -> int:
    """The log size the snapshot says it saw (0 when it says nothing usable)."""
    offset = snapshot.data.get("offset") if snapshot.status == "ok" else None
    return offset if type(offset) is int and offset > 0 else 0


def _is_torn(error: IdentityError) -> bool:
    return isinstance(error, LogDamagedError) and error.cause == "torn-tail"


def _later(a: Identity | None, b: Identity | None) -> Identity | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.seq > a.seq else a


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


def _from_snapshot(
    snapshot: SnapshotRead, log_path: str
) -> tuple[Identity | None, int | None, bool, int]:
    """``(identity, offset, stale, size)`` from the snapshot when it names a record of the log.

    The steady state: the log ends with the very record the snapshot names
    (only the log's last line is read). When the log has grown since
    (``stale``), just the new records are folded. Otherwise ``(None, None,
    False)``: the caller replays the whole log.
    """
    identity = _snapshot_identity(snapshot)
    offset = _snapshot_offset(snapshot)
    if identity is None or not offset:
        return None, None, False, 0
    size, last = peek_end(log_path)
    names_last = (
        last[_H_SLICE] == identity.h.encode("ascii") and b'"seq":%d,' % identity.seq in last[:48]
    )
    if size >= offset and names_last:
        # The named record is the last whole line: what follows it, if anything, is a
        # torn last write (the next change's append removes it). The steady state.
        return identity, offset, False, size
    if size > offset:
        from idstitch.events import Checkpoint
        from idstitch.store._log import FileLog

        reader = FileLog(log_path).records(since=Checkpoint(identity.seq, identity.h, offset))
        result = fold(reader, identity)
        grown = reader.checkpoint.offset != offset and result.identity is not None
        if grown and (result.error is None or _is_torn(result.error)):
            assert result.identity is not None
            return result.identity, reader.checkpoint.offset, True, size
    return None, None, False, 0


def _sweep_temporaries(snapshot_path: str) -> None:
    """Remove the snapshot's temporary files that writers killed mid-write left behind.

    Only under the state dir's file lock: every snapshot writer holds it, so
    no temporary file found then belongs to a write still in progress.
    """
    folder, name = os.path.split(snapshot_path)
    prefix = f".{name}."  # write_snapshot's mkstemp(prefix=".<name>.", suffix=".tmp")
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    for entry in names:
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError as exc:
                _debug("idstitch: could not remove %s (%r)", entry, exc)
            else:
                _debug("idstitch: removed %s, left by a writer that was killed", entry)


_HEX = frozenset("0123456789abcdef")


def _snapshot_identity(snapshot: SnapshotRead) -> Identity | None:
    """The identity an ``ok`` snapshot holds, if a log could have written it; else ``None``.

    ``Identity.from_dict`` checks the types; this checks the values too, so
    that a damaged or hostile ``telemetry.json`` never puts an illegal,
    blank or oversized id on the wire (R13): it is refused and the identity
    is rebuilt from the log.
    """
    if snapshot.status != "ok":
        return None
    identity = Identity.from_dict(snapshot.data)
    if identity is None or len(identity.h) != 32 or not _HEX.issuperset(identity.h):
        return None
    users = [identity.user_id, identity.linked_user]
    if identity.undo is not None:
        users += identity.undo[1:]
    if any(user is not None and user_id_problem(user) is not None for user in users):
        return None
    try:
        check_device_id(identity.device_id)
    except ValueError:
        return None
    return identity


def _noting_hashes(records: Iterable[Record], hashes: set[str]) -> Iterator[Record]:
    """``records``, adding each one's ``h`` to ``hashes`` as it goes by."""
    for record in records:
        hashes.add(record["h"])
        yield record


def _corrupt(problem: str) -> SnapshotRead:
    from idstitch.store._snapshot import SnapshotRead

    return SnapshotRead("corrupt", problem=problem)


def _foreign_identity(snapshot: SnapshotRead) -> tuple[str, str | None] | None:
    """``(device_id, user_id)`` of a foreign state file to adopt, if it is one.

    The device id becomes the distinct id of anonymous events and the alias's
    target, so it must be an id PostHog would merge: R13's refusals apply to it
    as to a user id (a legacy file holding ``"null"`` would otherwise pool every
    such machine's anonymous history into one person).
    """
    if snapshot.status != "foreign":
        return None
    data = snapshot.data
    device_id = data.get("device_id")
    if not isinstance(device_id, str) or user_id_problem(device_id) is not None:
        return None
    distinct = data.get("distinct_id")
    if isinstance(distinct, str) and distinct != device_id and user_id_problem(distinct) is None:
        return device_id, distinct
    return device_id, None
