"""The reference model: identity-rules.md R1-R16 in plain Python, for the vectors' expectations.

Written from the rules' text alone, not from idstitch's code: nothing here
imports ``idstitch.machine`` or ``idstitch.service``, and nothing here knows
the transition table. The generator (:mod:`idstitch.conformance.generate`)
runs every scenario through this model for the expected replies, then runs
idstitch's own driver over the same scenario and stops at the first
disagreement: a bug in the library can never become a vector, and a
mistake in the model cannot hide either.

The model is one state dir (``disk``) and one process at a time
(``proc``); device ids are symbols (``D1``, ``D2`` ...) minted in the order
a fresh device appears. It returns, for each step, the reply a driver must
give (``sent`` messages, the ``distinct_id`` after the step, ``accepted``
for user steps) and, for each process, whether it may write the state dir.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ALIAS_ATTEMPTS", "Model", "illegal_user_id", "run_model"]

#: R9: a process's responses try a refused alias at most this many times (the login
#: command and the next process try again). Generated vectors stay below the bound.
ALIAS_ATTEMPTS = 3

#: R13, "in any case".
_ANY_CASE = frozenset(
    {
        "anonymous",
        "guest",
        "distinct_id",
        "distinctid",
        "id",
        "not_authenticated",
        "email",
        "undefined",
        "true",
        "false",
    }
)
#: R13, exactly as written.
_EXACT = frozenset({"null", "none", "None", "NaN", "0", "[object Object]"})
#: PostHog's limit on a distinct id.
_LONGEST = 200


def illegal_user_id(user_id: str) -> bool:
    """Whether R13 refuses ``user_id`` (blank, a placeholder bare or quoted, invisible, too long,
    or holding control characters, which no id from an API response holds)."""
    if len(user_id) > _LONGEST:
        return True
    text = user_id.strip()
    words = {text}
    for quote in ("'", '"'):
        if len(text) >= 2 and text[0] == text[-1] == quote:
            words.add(text[1:-1].strip())
    return any(
        word.lower() in _ANY_CASE
        or word in _EXACT
        or all(char.isspace() or unicodedata.category(char) == "Cf" for char in word)  # blank
        for word in words
    ) or any(ord(char) < 32 or 0x7F <= ord(char) < 0xA0 for char in user_id)  # control chars


@dataclass
class _Identity:
    device: str
    user: str | None = None
    #: Every device this identity's history aliased, to the one user it was aliased to (R3).
    linked: dict[str, str] = field(default_factory=dict)

    def copy(self) -> _Identity:
        return _Identity(self.device, self.user, dict(self.linked))


@dataclass
class _Process:
    identity: _Identity
    #: R2: the identity lasts (a persistent runtime, not opted out, a usable state dir).
    lasting: bool
    opted_out: bool
    ephemeral: bool
    command: str | None
    refusals: int = 0  # the sink refuses this many next aliases
    failures: int = 0  # aliases this process failed to queue (R9's bound)
    wrote: bool = False


class Model:
    """One state dir and the process currently running over it."""

    def __init__(self, *, state_dir_usable: bool = True) -> None:
        self.usable = state_dir_usable
        self.disk: _Identity | None = None
        self.devices = 0
        self.proc: _Process | None = None
        #: After an exit: whether that process wrote the state dir (``None``: not checked, a
        #: lasting run writes as it likes; R2 and R14 bind only ephemeral and opted-out runs).
        self.writes: bool | None = None

    def _mint(self) -> str:
        self.devices += 1
        return f"D{self.devices}"

    # ------------------------------------------------------------- steps

    def step(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply a driver must give to ``request`` (one step of the protocol)."""
        op = request["op"]
        if op == "open":
            return self._open(request)
        proc = self.proc
        assert proc is not None, "a step before open"
        sent: list[dict[str, Any]] = []
        reply: dict[str, Any] = {}
        if op in ("response", "login"):
            reply["accepted"] = self._user_event(proc, op, request["user_id"], sent)
        elif op == "concurrent_responses":
            # R5: the same user seen by several threads at once is one response.
            for user_id in request["user_ids"]:
                self._user_event(proc, "response", user_id, sent)
        elif op in ("logout", "clear"):
            self._forget(proc, op)
        elif op == "refuse_next_alias":
            proc.refusals += 1
        elif op == "capture":
            self._capture(proc, request["event"], sent)
        elif op == "exit":
            if proc.command is not None:  # R11: the post-command event, identity at the end
                self._capture(proc, "cli_command_executed", sent)
            self.writes = proc.wrote if (proc.ephemeral or proc.opted_out) else None
            self.proc = None
        else:
            raise ValueError(f"unknown op {op!r}")
        return {"sent": sent, "distinct_id": self._distinct(proc.identity), **reply}

    def _open(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is None, "open while a process runs"
        env = request.get("env", {})
        names = ("DO_NOT_TRACK", *request.get("opt_out_vars", ()))
        opted_out = any(_truthy(env.get(name)) for name in names)
        ephemeral = request["runtime"] == "ephemeral"
        identity = self.disk.copy() if self.disk is not None else _Identity(self._mint())
        lasting = self.usable and not ephemeral and not opted_out
        self.proc = _Process(identity, lasting, opted_out, ephemeral, request.get("command"))
        if lasting:
            self.disk = identity.copy()  # a lasting run keeps its device from the start
        return {"sent": [], "distinct_id": self._distinct(identity)}

    def _user_event(self, proc: _Process, kind: str, user_id: str, sent: list[Any]) -> bool:
        if illegal_user_id(user_id):  # R13: refused, nothing changes
            return False
        identity = proc.identity
        if identity.linked.get(identity.device) == user_id:  # R3, R6: already theirs
            identity.user = user_id
        elif (
            proc.lasting  # R2
            and identity.device not in identity.linked  # R3: the first identity only
            and (kind == "login" or proc.failures < ALIAS_ATTEMPTS)
        ):
            if proc.refusals:  # R9: not queued, un-stashed: as if it never happened
                proc.refusals -= 1
                proc.failures += 1
                return True
            identity.linked[identity.device] = user_id
            identity.user = user_id
            sent.append({"type": "alias", "user_id": user_id, "device_id": identity.device})
        else:
            identity.user = user_id  # R1, R4: stamp only
        self._persist(proc)
        return True

    def _forget(self, proc: _Process, op: str) -> None:
        identity = proc.identity
        identity.user = None
        if op == "logout":  # R7: a device never seen before
            identity.device = self._mint()
        if proc.lasting:
            self._persist(proc)
        elif self.disk is not None and self.disk.user is not None and proc.opted_out:
            # R14's one write, R16: the dir must not bring the forgotten user back.
            self.disk.user = None
            if op == "logout":
                self.disk.device = identity.device
            proc.wrote = True

    def _capture(self, proc: _Process, event: str, sent: list[Any]) -> None:
        if not proc.opted_out:  # R14: nothing is sent
            distinct_id = self._distinct(proc.identity)
            sent.append({"type": "capture", "event": event, "distinct_id": distinct_id})

    def _persist(self, proc: _Process) -> None:
        if proc.lasting:
            self.disk = proc.identity.copy()

    @staticmethod
    def _distinct(identity: _Identity) -> str:
        return identity.user if identity.user is not None else identity.device

    def holds_user(self) -> bool:
        """Whether the state dir holds a user now."""
        return self.disk is not None and self.disk.user is not None


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def run_model(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """What every process of ``scenario`` must do: its ``replies``, one per step, and whether
    it ``writes`` the state dir."""
    model = Model(state_dir_usable=scenario.get("setup", {}).get("state_dir") != "file")
    expected = []
    for process in scenario["processes"]:
        copies = process.get("parallel", 1)
        if copies > 1:
            _check_parallel(model, process)
        replies = [model.step(step) for step in process["steps"]]
        for reply in replies:  # R5: copies alias once between them; each sends its own events
            aliases = [m for m in reply["sent"] if m["type"] == "alias"]
            reply["sent"] = aliases + [m for m in reply["sent"] if m["type"] != "alias"] * copies
        expected.append({"replies": replies, "writes": model.writes})
    return expected


#: What copies of a process running at once may do and stay predictable: no forgetting (each
#: copy would rotate to a device of its own), no refusal (which copy's sink refuses?).
_PARALLEL_OPS = frozenset({"open", "response", "login", "capture", "exit"})


def _check_parallel(model: Model, process: dict[str, Any]) -> None:
    """Copies of one process at once (R5 across processes, R12): over a state dir that exists,
    persistent, with only steps whose outcome does not depend on which copy goes first."""
    opening = process["steps"][0]
    lasting = opening["runtime"] == "persistent" and not opening.get("env") and model.usable
    if model.disk is None or not lasting:
        raise ValueError("parallel processes need a lasting state dir that exists already")
    if not {step["op"] for step in process["steps"]} <= _PARALLEL_OPS:
        raise ValueError(f"parallel processes take only {sorted(_PARALLEL_OPS)}")
