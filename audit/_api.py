"""The audit tool's public API: each command's answer as a frozen result object.

``idstitch replay``, ``verify``, ``persons``, ``show``, ``doctor`` and
``diagram`` print what these functions return; the command line only
parses arguments and formats. Every function that takes a log accepts an
``identity.jsonl`` path or a state dir holding one, reads it once, one line
at a time, and never writes to it; a log that cannot be read as a log at
all raises :class:`~idstitch.audit.UnusableInputError` (the commands' exit
2). A damaged log is read up to the damage, which the result names.

The modules each function needs are imported when it is called, so that
``import idstitch.audit`` (and each command) costs only what it uses.
"""

from __future__ import annotations

import os

from idstitch.events._frozen import Frozen, freeze

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from idstitch.events import LogDamagedError, TransitionError
    from idstitch.machine import Identity
    from idstitch.service import Diagnosis

    from ._persons import Refusal
    from ._show import StateReport
    from ._source import LogSource
    from ._timeline import Step
    from ._verify import Violation

__all__ = [
    "Person",
    "PersonReport",
    "TimelineReport",
    "VerifyReport",
    "diagnosis",
    "diagram",
    "person_graph",
    "state_report",
    "timeline",
    "verify_log",
]


def _open(log: str | os.PathLike[str], strict: bool) -> LogSource:
    from ._source import open_log

    return open_log(os.fspath(log), strict=strict)


class TimelineReport(Frozen):
    """A log's timeline (``idstitch replay``) and where the identity ended up.

    ``steps``: one row per record (empty when they went to ``on_step``
    instead); ``identity``: after the last good record (``None``: no good
    record); ``aliases``: every standing alias, device id -> user id;
    ``records``: how many records were replayed; ``damage``: what stopped
    the read, if anything; ``refused``: the transition the table refused,
    if that stopped it, with ``refused_offset`` the byte offset of its record.
    """

    __slots__ = (
        "aliases",
        "damage",
        "identity",
        "path",
        "records",
        "refused",
        "refused_offset",
        "steps",
    )
    path: str
    steps: tuple[Step, ...]
    identity: Identity | None
    aliases: Mapping[str, str]
    records: int
    damage: LogDamagedError | None
    refused: TransitionError | None
    refused_offset: int | None

    def __init__(
        self,
        *,
        path: str,
        steps: tuple[Step, ...],
        identity: Identity | None,
        aliases: Mapping[str, str],
        records: int,
        damage: LogDamagedError | None,
        refused: TransitionError | None,
        refused_offset: int | None,
    ) -> None:
        freeze(self, locals())

    @property
    def complete(self) -> bool:
        """Whether the whole log was replayed (no damage, no refused transition): exit 0."""
        return self.damage is None and self.refused is None


def timeline(
    log: str | os.PathLike[str],
    *,
    strict: bool = False,
    on_step: Callable[[Step], None] | None = None,
) -> TimelineReport:
    """Replay ``log`` record by record: each record with the state before and after it.

    ``strict``: also validate every record with the pydantic models (a record
    they refuse is damage, cause ``bad-field``). ``on_step``: called with each
    row as it is read, which the result then does not keep (so a log of any
    size streams through). Stops at damage or at a record the transition
    table refuses, both named in the result.
    """
    from ._timeline import Timeline

    source = _open(log, strict)
    kept: list[Step] = []
    each = kept.append if on_step is None else on_step
    found = Timeline()
    records = source.records()
    try:
        for step in found.steps(records):
            each(step)
    finally:
        records.close()  # the log is closed even when ``on_step`` raises
    refused = found.refused
    return TimelineReport(
        path=source.path,
        steps=tuple(kept),
        identity=found.identity,
        aliases=found.aliases,
        records=found.count,
        damage=source.error,
        refused=None if refused is None else refused[0],
        refused_offset=None if refused is None else refused[1],
    )


class VerifyReport(Frozen):
    """What ``idstitch verify`` found: every violation of L1-L9 (and T), in the log's order.

    ``violations``: each one (empty when they went to ``on_violation``
    instead); ``count``: how many there were; ``ids``: the rules broken, in
    :data:`~idstitch.audit.INVARIANTS` order; ``records``: how many good
    records were checked; ``damage``: the damage that stopped the check (it
    is also among the violations, as L1 or L8). ``consent``: the user's telemetry
    choice in force at the end of the good records, ``(choice, seq, at)`` of its
    last ``consent`` record, or ``None`` (never recorded).
    """

    __slots__ = ("consent", "count", "damage", "ids", "path", "records", "violations")
    path: str
    violations: tuple[Violation, ...]
    count: int
    ids: tuple[str, ...]
    records: int
    damage: LogDamagedError | None
    consent: tuple[str, int, str] | None

    def __init__(
        self,
        *,
        path: str,
        violations: tuple[Violation, ...],
        count: int,
        ids: tuple[str, ...],
        records: int,
        damage: LogDamagedError | None,
        consent: tuple[str, int, str] | None = None,
    ) -> None:
        freeze(self, locals())

    @property
    def ok(self) -> bool:
        """Whether every invariant holds over the whole log: exit 0."""
        return self.count == 0

    @property
    def complete(self) -> bool:
        """Whether the check read the whole log (no damage stopped it)."""
        return self.damage is None


def verify_log(
    log: str | os.PathLike[str],
    *,
    strict: bool = False,
    on_violation: Callable[[Violation], None] | None = None,
) -> VerifyReport:
    """Check the invariants L1-L9 of ``log`` (and T: every record a transition the table allows).

    Goes on past each violation, so one call lists them all, until damage
    (L1, or L8 for a format version this build cannot read) stops it.
    ``strict`` as for :func:`timeline`; ``on_violation``: called with each
    violation as it is settled, which the result then does not keep.
    """
    from ._verify import INVARIANTS, Verifier, damage_violation

    source = _open(log, strict)
    kept: list[Violation] = []
    each = kept.append if on_violation is None else on_violation
    found: set[str] = set()
    count = 0

    def report(violations: list[Violation]) -> None:
        nonlocal count
        for violation in violations:
            count += 1
            found.add(violation.id)
            each(violation)

    verifier = Verifier()
    records = source.records()
    consent = None
    try:
        for record, offset in records:
            report(verifier.check(record, offset))
            if record["kind"] == "consent":
                consent = (record["telemetry"], record["seq"], record["at"])
    finally:
        records.close()  # the log is closed even when ``on_violation`` raises
    report(verifier.finish())
    error = source.error
    if error is not None:
        report([damage_violation(error, source.line_at(error.offset))])
    return VerifyReport(
        path=source.path,
        violations=tuple(kept),
        count=count,
        ids=tuple(rule for rule in INVARIANTS if rule in found),
        records=verifier.records,
        damage=error,
        consent=consent,
    )


class Person(Frozen):
    """One person of the graph: its distinct ids in the order they joined (``users``: those
    the log names as user ids, ``devices``: the others), whether it is identified, and its
    history as ``(seq, note)`` pairs."""

    __slots__ = ("devices", "distinct_ids", "history", "identified", "number", "users")
    number: int
    distinct_ids: tuple[str, ...]
    users: tuple[str, ...]
    devices: tuple[str, ...]
    identified: bool
    history: tuple[tuple[int, str], ...]

    def __init__(
        self,
        *,
        number: int,
        distinct_ids: tuple[str, ...],
        users: tuple[str, ...],
        devices: tuple[str, ...],
        identified: bool,
        history: tuple[tuple[int, str], ...],
    ) -> None:
        freeze(self, locals())

    @property
    def flagged(self) -> bool:
        """Whether the person holds two or more user ids: two people merged into one."""
        return len(self.users) > 1

    def as_json(self) -> dict[str, Any]:
        """The person as ``persons --json`` prints it."""
        return {
            "type": "person",
            "person": self.number,
            "distinct_ids": list(self.distinct_ids),
            "users": list(self.users),
            "devices": list(self.devices),
            "identified": self.identified,
            "flagged": self.flagged,
            "history": [{"seq": seq, "note": note} for seq, note in self.history],
        }


class PersonReport(Frozen):
    """PostHog's person graph after a log's aliases (``idstitch persons``).

    ``persons``: the persons that exist at the end, oldest first;
    ``refused``: the aliases that merged nothing, and why; ``flagged``: the
    numbers of the persons holding two or more user ids;
    ``personless_devices``: device ids never aliased; ``records``: the good
    records modelled; ``damage``: what stopped the read, if anything.
    """

    __slots__ = ("damage", "flagged", "path", "personless_devices", "persons", "records", "refused")
    path: str
    persons: tuple[Person, ...]
    refused: tuple[Refusal, ...]
    flagged: tuple[int, ...]
    personless_devices: int
    records: int
    damage: LogDamagedError | None

    def __init__(
        self,
        *,
        path: str,
        persons: tuple[Person, ...],
        refused: tuple[Refusal, ...],
        flagged: tuple[int, ...],
        personless_devices: int,
        records: int,
        damage: LogDamagedError | None,
    ) -> None:
        freeze(self, locals())

    @property
    def ok(self) -> bool:
        """No person holds two users and the whole log was read: exit 0."""
        return not self.flagged and self.damage is None


def person_graph(log: str | os.PathLike[str], *, strict: bool = False) -> PersonReport:
    """Model what PostHog's person graph becomes from ``log``'s aliases (its merge rules).

    Only the records before damage are modelled. ``strict`` as for :func:`timeline`.
    """
    from ._persons import PersonGraph

    source = _open(log, strict)
    graph = PersonGraph()
    records = source.records()
    try:
        for record, _ in records:
            graph.feed(record)
    finally:
        records.close()
    graph.finish()
    persons = []
    for person in graph.live:
        users = person.users(graph.users)
        persons.append(
            Person(
                number=person.number,
                distinct_ids=tuple(person.distinct_ids),
                users=tuple(users),
                devices=tuple(i for i in person.distinct_ids if i not in graph.users),
                identified=person.identified,
                history=tuple(person.history),
            )
        )
    return PersonReport(
        path=source.path,
        persons=tuple(persons),
        refused=tuple(graph.refused),
        flagged=tuple(person.number for person in persons if person.flagged),
        personless_devices=graph.personless_devices,
        # The checkpoint is the position after the last good record.
        records=source.checkpoint.seq,
        damage=source.error,
    )


def state_report(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    app: str | None = None,
    env: Mapping[str, str] | None = None,
) -> StateReport:
    """The identity a run started now would hold in ``state_dir`` (``idstitch show``).

    ``app``: read that app's default state dir instead. ``env``: the
    environment the runtime is detected in and the default dir found from
    (``os.environ`` if ``None``). Writes nothing. Raises
    :class:`~idstitch.audit.UnusableInputError` when there is no identity to
    show (no state dir named, none there, or one idstitch would not use).
    """
    from ._show import inspect_state_dir, resolve_state_dir

    environ = os.environ if env is None else env
    folder = None if state_dir is None else os.fspath(state_dir)
    return inspect_state_dir(resolve_state_dir(folder, app, environ), environ)


def diagnosis(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    app: str | None = None,
    repair: bool = False,
    env: Mapping[str, str] | None = None,
) -> Diagnosis:
    """Whether a state dir is healthy, what is wrong and what a repair would do
    (``idstitch doctor``): the service's own :class:`~idstitch.service.Diagnosis`.

    ``repair``: heal it first, as the next run would; damaged files are kept
    aside, never deleted. Without it, nothing is written. Raises
    :class:`~idstitch.audit.UnusableInputError` when the dir cannot be examined.
    """
    from ._show import examine_state_dir, resolve_state_dir

    environ = os.environ if env is None else env
    folder = None if state_dir is None else os.fspath(state_dir)
    return examine_state_dir(resolve_state_dir(folder, app, environ), repair=repair)


def diagram(fmt: str = "mermaid") -> str:
    """The state diagram, drawn from the machine's transition table (``idstitch diagram``):
    ``"mermaid"`` (a ``stateDiagram-v2``) or ``"text"`` (for a terminal, 80 columns)."""
    if fmt == "text":
        from ._diagram import text_diagram

        return text_diagram()
    if fmt != "mermaid":
        raise ValueError(f"unknown diagram format {fmt!r}: use 'mermaid' or 'text'")
    from idstitch.machine import mermaid

    return mermaid()
