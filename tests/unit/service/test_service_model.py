"""The real service, file-backed, driven beside a plain model of the rules (hypothesis).

The model below is written from the rules (R1-R9), not from the transition
table, so the two are independent: after every step the service, its log
replayed from scratch, and the model must agree. A sender process (another
process, as the detached sender is) may report at any step that it finally
dropped an alias: ``record_dropped_alias`` on the state dir, and the
device counts as not aliased from then on (R9).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from idstitch.adapters.runtime import Runtime
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import USER_EVENTS, IdentityStitch, State, fold, replay
from idstitch.service import record_dropped_alias
from idstitch.store import FileLog
from support.service import DeviceIds, ticking_clock
from support.strategies import examples

USERS = st.sampled_from(["user-a", "user-b", "user-c"])
ILLEGAL = st.sampled_from(["", "anonymous", "GUEST", "null", "'guest'", "0", "x\ny"])
RUNTIMES = st.sampled_from([Runtime.PERSISTENT, Runtime.EPHEMERAL])
#: Failed aliases after which a process's responses only stamp (docs/identity-model.md, R9).
ATTEMPTS = 3


class Model:
    """The rules, in plain Python: what the identity must be after each event."""

    def __init__(self, device: str) -> None:
        self.state = State.ANONYMOUS
        self.device = device
        self.user: str | None = None
        self.linked: dict[str, str] = {}  # device -> the one user it was aliased to
        self.failures = 0  # aliases this process failed to queue

    def copy(self) -> Model:
        """The same identity in a new process (its failure count starts again)."""
        other = Model(self.device)
        other.state, other.user, other.linked = self.state, self.user, dict(self.linked)
        return other

    @property
    def distinct_id(self) -> str:
        return self.user if self.user is not None else self.device

    def user_event(self, user: str, kind: str, *, persisting: bool, sink_fails: bool) -> bool:
        """Apply a response/login; return whether an alias reached the sink."""
        if self.linked.get(self.device) == user:  # R3: already theirs
            self.state, self.user = State.ALIASED, user
            return False
        tries = kind == "login" or self.failures < ATTEMPTS  # R9, bounded per process
        if persisting and self.device not in self.linked and tries:  # R2, R3: first, lasting
            if sink_fails:  # R9: un-stash, nothing changes
                self.failures += 1
                return False
            self.linked[self.device] = user
            self.state, self.user = State.ALIASED, user
            return True
        self.state, self.user = State.STAMPED, user  # R1, R4: stamp only
        return False

    def logout(self, new_device: str) -> None:  # R7
        self.state, self.user, self.device = State.RESET, None, new_device

    def clear(self) -> None:  # R8: the state becomes anonymous, the device is kept
        self.state, self.user = State.ANONYMOUS, None

    def drop(self, device: str, user: str) -> bool:
        """R9: the sender dropped the alias of ``device`` to ``user`` for good; return whether
        that alias stood (only then is anything recorded)."""
        if self.linked.get(device) != user:
            return False
        del self.linked[device]  # never merged: the device counts as not aliased
        if device == self.device and self.state is State.ALIASED:
            self.state = State.STAMPED  # still that user's events, no merge
        return True


class ServiceMachine(RuleBasedStateMachine):
    """Random events, runtimes, sink failures and restarts against one state dir."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="idstitch-model-"))
        self.sink = RecordingSink()
        self.devices = DeviceIds()
        self.stitch: IdentityStitch
        self.model: Model
        self.disk: Model  # what the files say (ephemeral runs change only memory)
        self.seen_devices: set[str] = set()
        self.drops: Counter[str] = Counter()  # device -> drops recorded
        #: A drop was recorded since this process last read the log (it learns of it on its
        #: next change, which reads what other processes appended first).
        self.behind = False

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _open(self, runtime: Runtime) -> None:
        self.stitch = IdentityStitch.open(
            state_dir=self.folder,
            runtime=runtime,
            sink=self.sink,
            env={},
            clock=ticking_clock(),
            new_device_id=self.devices,
        )
        self.opened_at = self.stitch.identity

    @initialize(runtime=RUNTIMES)
    def start(self, runtime: Runtime) -> None:
        self._open(runtime)
        self.model = Model(self.stitch.device_id)
        self.disk = self.model.copy() if self.persisting else None  # type: ignore[assignment]
        self.seen_devices.add(self.stitch.device_id)

    @property
    def persisting(self) -> bool:
        return self.stitch.runtime is Runtime.PERSISTENT

    def _catch_up(self) -> None:
        """A change of a persistent process first folds what other processes appended."""
        if self.behind:
            failures = self.model.failures
            self.model = self.disk.copy()
            self.model.failures = failures
            self.behind = False

    def _after_change(self) -> None:
        if self.persisting:
            self.disk = self.model.copy()

    @rule(user=USERS, kind=st.sampled_from(USER_EVENTS), fail=st.booleans())
    def user_event(self, user: str, kind: str, fail: bool) -> None:
        self._catch_up()
        self.sink.fail_aliases = 1 if fail else 0
        before = len(self.sink.aliases)
        if kind == "response":
            self.stitch.observe_authenticated_response(user)
        else:
            self.stitch.login(user)
        sent = self.model.user_event(user, kind, persisting=self.persisting, sink_fails=fail)
        assert before + int(sent) == len(self.sink.aliases)
        self.sink.fail_aliases = 0
        self._after_change()

    @rule(user=ILLEGAL)
    def illegal_id(self, user: str) -> None:
        before = self.stitch.identity
        assert self.stitch.login(user) is False, f"{user!r} was accepted"
        assert before == self.stitch.identity

    @rule()
    def logout(self) -> None:
        self._catch_up()
        self.stitch.logout()
        new_device = self.stitch.device_id
        assert new_device not in self.seen_devices, "logout reused a device id"
        self.seen_devices.add(new_device)
        self.model.logout(new_device)
        self._after_change()

    @rule()
    def clear(self) -> None:
        self._catch_up()
        self.stitch.clear_distinct_id()
        self.model.clear()
        self._after_change()

    @precondition(lambda self: self.disk is not None)
    @rule(runtime=RUNTIMES)
    def restart(self, runtime: Runtime) -> None:
        """A new process: memory is gone, the files remain."""
        self._open(runtime)
        self.model = self.disk.copy()
        self.behind = False

    @precondition(lambda self: self.disk is not None and self.disk.linked)
    @rule(data=st.data())
    def sender_drops_a_standing_alias(self, data: st.DataObject) -> None:
        """The sender gave up an alias the state dir holds."""
        device, user = data.draw(st.sampled_from(sorted(self.disk.linked.items())), label="drop")
        self._sender_drops(device, user)

    @precondition(lambda self: self.disk is not None)
    @rule(data=st.data())
    def sender_drops_an_alias_that_does_not_stand(self, data: st.DataObject) -> None:
        """The sender reports a drop the log has no alias for (another user, an unknown device,
        or one dropped already): nothing is recorded."""
        gone = [device for device, count in self.drops.items() if count]
        names = [(self.disk.device, "user-c"), ("device-never-seen", "user-a")]
        names += [(device, "user-a") for device in gone if device not in self.disk.linked]
        self._sender_drops(*data.draw(st.sampled_from(names), label="drop"))

    def _sender_drops(self, device: str, user: str) -> None:
        recorded = record_dropped_alias(
            str(self.folder), device_id=device, user_id=user, reason="expired"
        )
        assert self.disk.drop(device, user) == recorded
        event(f"drop recorded: {recorded}")
        if recorded:
            self.drops[device] += 1
            self.behind = self.persisting

    @invariant()
    def live_state_equals_the_model(self) -> None:
        expected = (self.model.state, self.model.device, self.model.user, self.model.distinct_id)
        live = self.stitch
        assert expected == (live.state, live.device_id, live.user_id, live.distinct_id)

    @invariant()
    def distinct_id_follows_the_state(self) -> None:
        live = self.stitch
        if live.state in (State.STAMPED, State.ALIASED):
            assert live.user_id == live.distinct_id
        else:
            assert (None, live.device_id) == (live.user_id, live.distinct_id)

    @invariant()
    def replaying_the_log_equals_the_live_state(self) -> None:
        if self.persisting and self.behind:  # the log is ahead of this process: it is the disk's
            result = replay(FileLog(self.folder / "identity.jsonl").records(strict=True))
            disk = (self.disk.state, self.disk.device, self.disk.user)
            assert (None, disk) == (result.error, (result.state, result.device_id, result.user_id))
        elif self.persisting:
            result = replay(FileLog(self.folder / "identity.jsonl").records(strict=True))
            assert (None, self.stitch.identity) == (result.error, result.identity)
        else:
            records = list(self.stitch.log.records())
            from_scratch = bool(records) and records[0]["seq"] == 1
            result = fold(records, None if from_scratch else self.opened_at)
            assert (None, self.stitch.identity) == (result.error, result.identity)

    @invariant()
    def at_most_one_alias_per_device_but_after_a_drop(self) -> None:
        """R3 with R9: a device is aliased once, and once more after each drop of its alias."""
        per_device = Counter(alias.device_id for alias in self.sink.aliases)
        assert all(count <= 1 + self.drops[d] for d, count in per_device.items()), per_device

    @invariant()
    def aliases_only_where_it_lasts(self) -> None:
        log = FileLog(self.folder / "identity.jsonl")
        if not log.exists():
            return
        for record in log.records():
            if record.get("alias"):
                assert "persistent" == record["runtime"]


ServiceMachine.TestCase.settings = settings(
    max_examples=examples(200), stateful_step_count=25, deadline=None
)
test_service_follows_the_rules = pytest.mark.slow(ServiceMachine.TestCase)
