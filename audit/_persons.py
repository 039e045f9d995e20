"""A model of PostHog's person graph, fed with a log's identity records.

What is modelled (see docs/audit.md for the sources):

* **Which events create persons.** Events sent under a device id carry
  ``$process_person_profile: false``: PostHog creates no person for them.
  Events sent under a user id (any record that leaves a user stamped or
  aliased, since every command sends ``cli_command_executed`` under the
  current distinct id, rule R11) create that user's person if it has none.
  That person is not identified.
* **``$create_alias``** with ``distinct_id`` = user and ``properties.alias``
  = device, as ``PostHogSink`` sends it. PostHog merges the alias (the
  *other* id) into the distinct id's person:

  - either id illegal (PostHog's placeholder list): refused;
  - neither id has a person: one new person holding both;
  - only the user has one: the device id is added to it;
  - only the device has one: the user id is added to the *device's*
    person. This branch has no "identified" check, which is how a
    re-aliased device silently joins a new user to someone else;
  - both have the same person: nothing to do;
  - both have different persons: refused when the device's person is
    already identified, else the device's person is merged into the user's.

  Every alias that is not refused for an illegal id leaves the person it
  returns identified (refused merges included, as PostHog's code does).
* **Merges are permanent.** Logout and clear change nothing here.
* An alias followed by an ``enqueue_failure`` never reached PostHog.
* An ``import`` with ``aliased`` true stands for an alias the adopted
  tool already sent.
* A ``heal`` with a ``linked_user`` stands for the alias of its device
  that the damaged log (kept aside, named by ``kept``) recorded: sent
  before the heal, so the merge happened then. It is applied as an alias
  and marked as carried over in the person's history.
* An alias that a later ``alias_dropped`` names never reached PostHog
  either (refused for good, or expired in the spool), however many records
  came between: the graph is built again as if it had never been sent. Its
  user still had their events (a response or login stamps them), so they
  make that user's person where the merge would have; the alias is listed
  as refused, with the drop's seq and reason. That is why the graph keeps
  its steps (one per merge, per failed enqueue and per user's first
  events) besides the ids.

The model knows only what the log says: a user who already has a person
from elsewhere (another machine) would make PostHog refuse a merge that
the model shows as an attachment. So the model shows the worst case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from idstitch.events import Record, TransitionError, user_id_problem
from idstitch.machine import Identity
from idstitch.machine import step as step_of

__all__ = ["BRANCHES", "Person", "PersonGraph", "Refusal"]

#: The branches of PostHog's merge rules, as :meth:`PersonGraph.merge` names the one taken.
BRANCHES = {
    "illegal": "an illegal id: PostHog refuses the merge",
    "new": "neither id had a person: one new person holds both",
    "joins": "only the distinct id had a person: the alias joins it",
    "attached": "only the alias had a person: the distinct id is attached to it "
    "(that branch has no identified check)",
    "same": "both ids already on one person",
    "refused": "the alias's person is already identified: PostHog refuses the merge",
    "merged": "the alias's person is merged into the distinct id's",
    "dangerous": "$merge_dangerously: the alias's person is merged in though identified",
}


@dataclass(slots=True)
class Person:
    """One person: its distinct ids in the order they joined, and how it came to be."""

    number: int
    distinct_ids: list[str]
    identified: bool = False
    history: list[tuple[int, str]] = field(default_factory=list)
    merged_into: int | None = None

    def users(self, users: set[str]) -> list[str]:
        """The distinct ids of this person that the log names as user ids."""
        return [i for i in self.distinct_ids if i in users]

    def as_json(self, users: set[str]) -> dict[str, Any]:
        """The person as ``persons --json`` prints it."""
        held = self.users(users)
        return {
            "type": "person",
            "person": self.number,
            "distinct_ids": list(self.distinct_ids),
            "users": held,
            "devices": [i for i in self.distinct_ids if i not in users],
            "identified": self.identified,
            "flagged": len(held) > 1,
            "history": [{"seq": seq, "note": note} for seq, note in self.history],
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    """An alias that did not merge anything: refused by PostHog, or never queued."""

    seq: int
    user_id: str
    device_id: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        """The refusal as ``persons --json`` prints it."""
        return {
            "type": "refused",
            "seq": self.seq,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "reason": self.reason,
        }


@dataclass(slots=True)
class _Merge:
    """An alias the log sent (or carried in): a merge, unless a later drop says PostHog never
    got it (``dropped`` says why). ``stamps``: its user's events went under the user id
    after it, so they make that user's person if the merge is taken out."""

    user: str
    device: str
    seq: int
    what: str
    origin: str = ""
    stamps: bool = True
    dropped: str | None = None
    dangerously: bool = False


@dataclass(frozen=True, slots=True)
class _Events:
    """The first events a user id was put under (each later one would change nothing)."""

    user: str
    seq: int


#: The mark of a record the transition table refuses.
_REFUSED = "refused"

#: One step of the graph, in the log's order.
_Step = _Merge | _Events | Refusal


@dataclass(slots=True)
class PersonGraph:
    """Feed every good record to :meth:`feed` in order, then call :meth:`finish`."""

    persons: list[Person] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    _of: dict[str, Person] = field(default_factory=dict)
    _pending: tuple[str, str, int] | None = None
    _steps: list[_Step] = field(default_factory=list)
    _evented: set[str] = field(default_factory=set)
    _identity: Identity | None = None

    def feed(self, record: Record) -> None:
        """Apply one record: the alias it sends, or the events it puts under a user.

        What the record did about an alias is the machine's step's word (its
        alias mark); a record the transition table refuses sends nothing (a
        replay stops there, verify reports it as T).
        """
        try:
            _, self._identity, mark = step_of(self._identity, record)
        except TransitionError:
            mark = _REFUSED
        self._settle(undone=mark == "undone")
        self.devices.add(record["device_id"])
        if record["kind"] == "logout":
            self.devices.add(record["new_device_id"])
        if mark in (_REFUSED, "undone"):
            return
        if mark == "dropped":
            self._drop(record)
            return
        seq = record["seq"]
        if mark == "carried":  # a heal carries over an alias sent before it
            linked = record["linked_user"]
            self.users.add(linked)
            carried = f" carried over by a heal (sent before it; kept in {record['kept']})"
            merge = _Merge(linked, record["device_id"], seq, "$create_alias", carried, stamps=False)
            self._do(merge)
        user = record.get("user_id")
        if user is None:
            return
        self.users.add(user)
        if mark == "adopted":
            self._do(_Merge(user, record["device_id"], seq, "the adopted tool's alias"))
        elif mark == "sent":
            self._pending = (user, record["device_id"], seq)
        else:
            self._events(user, seq)

    def _drop(self, record: Record) -> None:
        """Take out the merge of the alias a drop names (the last one standing), then build the
        graph again without it. A drop naming no such alias changes nothing (verify: L9)."""
        user, device, seq = record["user_id"], record["device_id"], record["seq"]
        for step in reversed(self._steps):
            if (
                isinstance(step, _Merge)
                and step.dropped is None
                and (step.user, step.device) == (user, device)
            ):
                step.dropped = (
                    f"dropped by the sender at seq {seq} ({record['reason']}): "
                    "PostHog never merged it"
                )
                self._rebuild()
                return

    def finish(self) -> None:
        """Apply an alias left pending at the end of the log."""
        self._settle(undone=False)

    def _settle(self, *, undone: bool) -> None:
        """Apply the alias of the record before, unless an ``enqueue_failure`` undid it."""
        if self._pending is None:
            return
        user, device, seq = self._pending
        self._pending = None
        if undone:
            reason = "never queued (enqueue_failure): PostHog got nothing"
            self._do(Refusal(seq, user, device, reason))
        else:
            self._do(_Merge(user, device, seq, "$create_alias"))

    def _events(self, user: str, seq: int) -> None:
        """Events under ``user``: a step the first time only (later ones change nothing, since
        an id never leaves the person it joined)."""
        if user not in self._evented:
            self._evented.add(user)
            self._do(_Events(user, seq))

    def _do(self, step: _Step) -> None:
        self._steps.append(step)
        self._apply(step)

    def _rebuild(self) -> None:
        """The graph again from the first step (after a drop took a merge out)."""
        self.persons, self.refused, self._of = [], [], {}
        for step in self._steps:
            self._apply(step)

    def _apply(self, step: _Step) -> None:
        if isinstance(step, Refusal):
            self.refused.append(step)
        elif isinstance(step, _Events):
            self._events_under(step.user, step.seq)
        elif step.dropped is None:
            self._alias(
                step.user,
                step.device,
                step.seq,
                step.what,
                step.origin,
                dangerously=step.dangerously,
            )
        else:
            self.refused.append(Refusal(step.seq, step.user, step.device, step.dropped))
            if step.stamps:
                self._events_under(step.user, step.seq)

    @property
    def live(self) -> list[Person]:
        """The persons that still exist (not merged into another), oldest first."""
        return [p for p in self.persons if p.merged_into is None]

    @property
    def flagged(self) -> list[Person]:
        """The persons holding two or more user ids."""
        return [p for p in self.live if len(p.users(self.users)) > 1]

    @property
    def personless_devices(self) -> int:
        """How many device ids have no person (their events were all personless)."""
        return sum(1 for d in self.devices if d not in self._of)

    def _new(self, ids: list[str], seq: int, note: str, *, identified: bool) -> Person:
        person = Person(len(self.persons) + 1, ids, identified, [(seq, note)])
        self.persons.append(person)
        for i in ids:
            self._of[i] = person
        return person

    def _events_under(self, user: str, seq: int) -> None:
        if user in self._of or user_id_problem(user) is not None:
            return
        self._new([user], seq, f"events under {user} create its person", identified=False)

    def merge(
        self, into: str, other: str, seq: int, what: str, *, dangerously: bool = False
    ) -> str:
        """Apply one merge event as PostHog's ingestion does: ``into`` is the event's
        distinct id, ``other`` the id it merges in (``alias``, ``$anon_distinct_id``),
        ``dangerously`` for ``$merge_dangerously``. Returns the branch taken, a key of
        :data:`BRANCHES`."""
        self._steps.append(_Merge(into, other, seq, what, dangerously=dangerously))
        return self._alias(into, other, seq, what, dangerously=dangerously)

    def events_under(self, distinct_id: str, seq: int) -> None:
        """Events under ``distinct_id`` that process persons: they create its person."""
        self._events(distinct_id, seq)

    def person_of(self, distinct_id: str) -> Person | None:
        """The person ``distinct_id`` is on now, if any."""
        return self._of.get(distinct_id)

    def _alias(
        self,
        user: str,
        device: str,
        seq: int,
        what: str,
        origin: str = "",
        *,
        dangerously: bool = False,
    ) -> str:
        """Apply one merge; the branch taken (a key of :data:`BRANCHES`)."""
        call = f"{what}({user} <- {device}){origin}"
        if user == device:
            return "same"
        for distinct_id in (user, device):
            if user_id_problem(distinct_id) is not None:
                reason = f"{distinct_id!r} is an illegal distinct id: PostHog refuses the merge"
                self.refused.append(Refusal(seq, user, device, reason))
                return "illegal"
        into, other = self._of.get(user), self._of.get(device)
        if into is None and other is None:
            self._new(
                [user, device], seq, f"{call}: neither had a person: new person", identified=True
            )
            return "new"
        if other is None:
            assert into is not None
            self._join(into, device, seq, f"{call}: {device} joins {user}'s person")
            return "joins"
        if into is None:
            self._join(
                other,
                user,
                seq,
                f"{call}: {user} had no person, so PostHog attaches it to {device}'s person "
                "(that branch has no identified check)",
            )
            return "attached"
        if into is other:
            into.identified = True
            into.history.append((seq, f"{call}: already one person"))
            return "same"
        if other.identified and not dangerously:
            into.identified = True
            reason = (
                f"{device}'s person (person {other.number}) is already identified: "
                "PostHog refuses to merge it into another"
            )
            self.refused.append(Refusal(seq, user, device, reason))
            into.history.append((seq, f"{call}: refused, but this person is now identified"))
            return "refused"
        into.identified = True
        into.history.append((seq, f"{call}: person {other.number} merged into this one"))
        for moved in other.distinct_ids:
            into.distinct_ids.append(moved)
            self._of[moved] = into
        into.history.extend(other.history)
        into.history.sort(key=lambda entry: entry[0])
        other.distinct_ids = []
        other.merged_into = into.number
        return "dangerous" if other.identified else "merged"

    def _join(self, person: Person, distinct_id: str, seq: int, note: str) -> None:
        person.distinct_ids.append(distinct_id)
        person.identified = True
        person.history.append((seq, note))
        self._of[distinct_id] = person
