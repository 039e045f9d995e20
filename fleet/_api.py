"""The fleet audit's answer: the persons holding two or more users, why, and how to split them.

The check is the query of :mod:`._query`, run by DuckDB. The explanation
replays, for the flagged persons only, the merge events that touched
their distinct ids through the merge rules ``idstitch persons`` models
(:class:`idstitch.audit._persons.PersonGraph`), so both tools name the
same branch for the same history.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from idstitch.audit import UnusableInputError
from idstitch.audit._persons import BRANCHES, PersonGraph
from idstitch.events import user_id_problem

from ._duck import Engine, open_engine
from ._query import UserSource

__all__ = ["FlaggedPerson", "FleetReport", "IllegalId", "Join", "SharedDevice", "fleet_audit"]


@dataclass(frozen=True, slots=True)
class Join:
    """The merge event that put ``user`` on the kept user's person: when, which event
    (its distinct id and the id it merged in) and the branch of the merge rules taken."""

    user: str
    time: str
    event: str
    distinct_id: str
    other: str
    branch: str

    def as_json(self) -> dict[str, Any]:
        """The join as ``fleet --json`` prints it."""
        return {
            "user": self.user,
            "time": self.time,
            "event": self.event,
            "distinct_id": self.distinct_id,
            "other": self.other,
            "branch": self.branch,
            "rule": BRANCHES[self.branch],
        }


@dataclass(frozen=True, slots=True)
class FlaggedPerson:
    """A person of the export holding two or more user ids.

    ``keep``: the user the person was created for (``keep_known`` false: the
    data does not show it, and ``keep`` is the user whose distinct-id row is
    oldest, a guess to check); ``joins``: how each other user got there
    (with events); ``split``: the distinct ids to split off.
    """

    team_id: str
    person_id: str
    users: tuple[str, ...]
    devices: tuple[str, ...]
    keep: str
    keep_known: bool
    keep_reason: str
    joins: tuple[Join, ...]
    split: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The person as ``fleet --json`` prints it."""
        return {
            "type": "person",
            "team_id": self.team_id,
            "person_id": self.person_id,
            "users": list(self.users),
            "devices": list(self.devices),
            "keep": self.keep,
            "keep_known": self.keep_known,
            "keep_reason": self.keep_reason,
            "joins": [join.as_json() for join in self.joins],
            "split": list(self.split),
        }

    def plan(self) -> dict[str, Any]:
        """One line of the split plan: the request that splits the other users off."""
        path = f"/api/projects/{self.team_id}/persons/{self.person_id}/split/"
        return {
            "team_id": self.team_id,
            "person_id": self.person_id,
            "keep": self.keep,
            "keep_known": self.keep_known,
            "distinct_ids_to_split": list(self.split),
            "request": {
                "method": "POST",
                "path": path,
                "json": {"distinct_ids_to_split": list(self.split)},
            },
        }


@dataclass(frozen=True, slots=True)
class SharedDevice:
    """An id merged into two or more distinct ids (``aliases``: ``(time, event, into)``,
    oldest first), whether PostHog took each merge or refused it."""

    device: str
    users: tuple[str, ...]
    aliases: tuple[tuple[str, str, str], ...]

    def as_json(self) -> dict[str, Any]:
        """The device as ``fleet --json`` prints it."""
        return {
            "type": "device",
            "device": self.device,
            "users": list(self.users),
            "aliases": [{"time": t, "event": e, "distinct_id": d} for t, e, d in self.aliases],
        }


@dataclass(frozen=True, slots=True)
class IllegalId:
    """A distinct id PostHog refuses to merge under, and why."""

    distinct_id: str
    problem: str

    def as_json(self) -> dict[str, Any]:
        """The id as ``fleet --json`` prints it."""
        return {"type": "illegal", "distinct_id": self.distinct_id, "problem": self.problem}


@dataclass(frozen=True, slots=True)
class FleetReport:
    """What ``idstitch fleet`` found. ``explained``: the events were read (joins, shared
    devices and illegal ids come from them)."""

    persons: tuple[FlaggedPerson, ...]
    devices: tuple[SharedDevice, ...] = ()
    illegal: tuple[IllegalId, ...] = ()
    explained: bool = False
    users_from: str = "events"

    @property
    def ok(self) -> bool:
        """No person holds two users: exit 0."""
        return not self.persons


def _users_source(users: Iterable[str] | None, user_pattern: str | None) -> UserSource:
    if users is not None and user_pattern is not None:
        raise UnusableInputError("tell users from devices once: --users or --user-pattern")
    if user_pattern is not None:
        try:
            re.compile(user_pattern)
        except re.error as exc:
            raise UnusableInputError(f"--user-pattern is not a regular expression: {exc}") from None
        return UserSource("pattern", user_pattern)
    return UserSource("list") if users is not None else UserSource()


def fleet_audit(
    persons: str | os.PathLike[str],
    *,
    events: str | os.PathLike[str] | None = None,
    users: Iterable[str] | None = None,
    user_pattern: str | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    progress: bool = False,
) -> FleetReport:
    """The persons of a PostHog persons export holding two or more user ids.

    ``persons``, ``events``: a path, glob or object-store URL of the export
    (Parquet or JSON lines). User ids are told from devices by the events,
    or by ``users`` (the user ids) or ``user_pattern`` (a regular expression
    matching a whole user id): one of the three is needed. With
    ``events``, each flagged person is explained and shared devices and
    illegal ids are listed. ``memory_limit``, ``temp_directory``,
    ``progress``: DuckDB's (see :func:`idstitch.fleet._duck.open_engine`).
    Reads only; raises :class:`~idstitch.audit.UnusableInputError` when an
    export cannot be read.
    """
    source = _users_source(users, user_pattern)
    if source.kind == "events" and events is None:
        raise UnusableInputError(
            "nothing tells user ids from device ids: give --events, --users or --user-pattern"
        )
    with open_engine(
        source, memory_limit=memory_limit, temp_directory=temp_directory, progress=progress
    ) as engine:
        engine.attach_persons(os.fspath(persons))
        if users is not None:
            engine.attach_users(users)
        if events is not None:
            engine.attach_events(os.fspath(events))
        return _report(engine, source)


def _report(engine: Engine, source: UserSource) -> FleetReport:
    rows = engine.check()
    grouped: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for team, person, distinct, is_user, version in rows:
        grouped.setdefault((team, person), []).append((distinct, is_user, version))
    if not engine.has_events:
        flagged = tuple(_unexplained(key, ids) for key, ids in grouped.items())
        candidates = [distinct for ids in grouped.values() for distinct, _, _ in ids]
        return FleetReport(flagged, illegal=_illegal(candidates), users_from=source.kind)
    flagged = _explained(engine, grouped)
    devices = _shared(engine.shared_devices())
    candidates = engine.merge_ids() + [d for ids in grouped.values() for d, _, _ in ids]
    return FleetReport(
        flagged,
        devices=devices,
        illegal=_illegal(candidates),
        explained=True,
        users_from=source.kind,
    )


def _illegal(candidates: Iterable[str]) -> tuple[IllegalId, ...]:
    found = {}
    for distinct_id in candidates:
        problem = user_id_problem(distinct_id)
        if problem is not None:
            found[distinct_id] = IllegalId(distinct_id, problem)
    return tuple(found[i] for i in sorted(found))


def _split_users(ids: list[tuple[str, int, int]]) -> tuple[list[str], list[str]]:
    users = [distinct for distinct, is_user, _ in ids if is_user]
    devices = [distinct for distinct, is_user, _ in ids if not is_user]
    return users, devices


def _unexplained(key: tuple[str, str], ids: list[tuple[str, int, int]]) -> FlaggedPerson:
    """A flagged person without events: the user whose row is oldest is kept (a guess)."""
    users, devices = _split_users(ids)
    version = {distinct: v for distinct, _, v in ids}
    keep = min(users, key=lambda u: (version[u], u))
    reason = (
        "no events to show whom the person was created for: this user's distinct-id row is "
        "the oldest (lowest person_distinct_id_version); check before splitting"
    )
    split = tuple(u for u in users if u != keep)
    return FlaggedPerson(*key, tuple(users), tuple(devices), keep, False, reason, (), split)


def _explained(
    engine: Engine, grouped: dict[tuple[str, str], list[tuple[str, int, int]]]
) -> tuple[FlaggedPerson, ...]:
    """Replay the merge events of the flagged persons' ids through PostHog's merge rules."""
    owner = {distinct: key for key, ids in grouped.items() for distinct, _, _ in ids}
    held = list(owner)
    merges = engine.merges(held)
    firsts = engine.first_events(held)
    # One step per merge and per first event processing persons, in time order (a merge
    # first at the same instant: a CLI aliases before the command's event).
    steps: list[tuple[str, int, str, str, str]] = sorted(
        [(t, 0, event, did, other) for t, event, did, other in merges]
        + [(t, 1, "", did, "") for t, did in firsts]
    )
    graph = PersonGraph()
    users_of = {key: _split_users(ids)[0] for key, ids in grouped.items()}
    keep: dict[tuple[str, str], tuple[str, str]] = {}
    joins: dict[tuple[str, str], dict[str, Join]] = {key: {} for key in grouped}
    partners: dict[str, set[str]] = {}
    for seq, (time, _, event, did, other) in enumerate(steps):
        if event:
            branch = graph.merge(did, other, seq, event, dangerously=event == "$merge_dangerously")
            partners.setdefault(other, set()).add(did)
            partners.setdefault(did, set()).add(other)
            what = f"{event}({did} <- {other}) at {time}"
        else:
            graph.events_under(did, seq)
            branch, what = "", f"its first events (at {time})"
        for key in {owner[i] for i in (did, other) if i in owner}:
            users = users_of[key]
            if key not in keep:
                placed = [u for u in users if graph.person_of(u) is not None]
                if placed:
                    first = did if did in placed else placed[0]
                    keep[key] = (first, f"{what} created the person for it")
            if key in keep:
                anchor = graph.person_of(keep[key][0])
                for user in users:
                    if (
                        user != keep[key][0]
                        and user not in joins[key]
                        and graph.person_of(user) is anchor
                    ):
                        joins[key][user] = Join(user, time, event, did, other, branch)
    found = []
    for key, ids in grouped.items():
        if key not in keep:  # the events show nothing of this person: guess as without them
            found.append(_unexplained(key, ids))
            continue
        users, devices = _split_users(ids)
        kept = keep[key][0]
        gone = {u for u in users if u != kept}
        # A device goes with the users it was aliased to, when none of them is kept.
        held_by = {d: partners.get(d, set()) & set(users) for d in devices}
        leaving = [d for d in devices if held_by[d] and held_by[d] <= gone]
        found.append(
            FlaggedPerson(
                *key,
                tuple(users),
                tuple(devices),
                kept,
                True,
                keep[key][1],
                tuple(joins[key][u] for u in users if u in joins[key]),
                tuple(u for u in users if u in gone) + tuple(leaving),
            )
        )
    return tuple(found)


def _shared(rows: list[tuple[str, str, str, str]]) -> tuple[SharedDevice, ...]:
    by_device: dict[str, list[tuple[str, str, str]]] = {}
    for device, time, event, user in rows:
        by_device.setdefault(device, []).append((time, event, user))
    return tuple(
        SharedDevice(device, tuple(dict.fromkeys(u for _, _, u in aliases)), tuple(aliases))
        for device, aliases in by_device.items()
    )
