"""The three reports over one log: replay, verify and persons.

Each takes an opened :class:`LogSource` and an :class:`Output`, streams the
log once, prints as it goes, and returns the command's exit code. The demo
prints the same reports for its scenarios.
"""

from __future__ import annotations

from contextlib import closing

from idstitch.events import LogDamagedError

from ._persons import PersonGraph
from ._render import (
    Output,
    Part,
    damage_line,
    identity_block,
    identity_json,
    timeline_header,
    timeline_line,
    timeline_row,
    transition_line,
)
from ._source import LogSource
from ._timeline import Timeline
from ._verify import INVARIANTS, Verifier, Violation, damage_violation

__all__ = ["persons_report", "replay_report", "verify_report"]

_LOG_RULES = [rule for rule in INVARIANTS if rule.startswith("L")]
#: The log invariants verify checks, as a range of ids (``L1-L9``).
_LOG_INVARIANTS = f"{_LOG_RULES[0]}-{_LOG_RULES[-1]}"


def replay_report(source: LogSource, out: Output) -> int:
    """The timeline, then the final identity: 0 read whole, 1 stopped at damage."""
    timeline = Timeline()
    if not out.as_json:
        out.text(*timeline_header())
    with closing(source.records()) as records:
        for step in timeline.steps(records):
            if out.as_json:
                out.json(step.as_json())
            elif out.styled:
                out.text(*timeline_row(step))
            else:
                out.plain(timeline_line(step))
    error = source.error
    refused = timeline.refused
    if out.as_json:
        if error is not None:
            out.json(_damage_json(error))
        elif refused is not None:
            transition, offset = refused
            out.json(
                {
                    "type": "damage",
                    "seq": transition.seq,
                    "offset": offset,
                    "cause": "transition",
                    "detail": str(transition),
                }
            )
        out.json(
            {
                "type": "identity",
                **identity_json(timeline.identity),
                "records": timeline.count,
                "aliases": timeline.aliases,
                "complete": error is None and refused is None,
            }
        )
    else:
        if error is not None:
            out.text(*damage_line(error, timeline.count))
        elif refused is not None:
            out.text(*transition_line(refused[0], refused[1], timeline.count))
        title = "final identity" if error is None and refused is None else "identity before it"
        aliased = len(timeline.aliases)
        out.lines(
            identity_block(
                title,
                timeline.identity,
                extra=[
                    ("records", str(timeline.count)),
                    ("aliased", f"{aliased} device{'s' if aliased != 1 else ''}"),
                ],
            )
        )
    return 0 if error is None and refused is None else 1


def _damage_json(error: LogDamagedError) -> dict[str, object]:
    return {
        "type": "damage",
        "seq": error.seq,
        "offset": error.offset,
        "cause": error.cause,
        "detail": error.detail,
    }


def verify_report(source: LogSource, out: Output) -> int:
    """Every violation of L1-L9 (and T), then a summary: 0 all hold, 1 violations."""
    verifier = Verifier()
    found: list[str] = []

    def report(violations: list[Violation]) -> None:
        for violation in violations:
            found.append(violation.id)
            if out.as_json:
                out.json(violation.as_json())
            else:
                out.text(
                    (f"{violation.id:<3}", "bold red"),
                    f" seq {violation.seq}: {violation.message}",
                )

    with closing(source.records()) as records:
        for record, offset in records:
            report(verifier.check(record, offset))
    report(verifier.finish())
    error = source.error
    if error is not None:
        report([damage_violation(error, source.line_at(error.offset))])
    ids = sorted(set(found), key=list(INVARIANTS).index)
    if out.as_json:
        out.json(
            {
                "type": "summary",
                "records": verifier.records,
                "violations": len(found),
                "ids": ids,
                "complete": error is None,
                "stopped_at": None if error is None else _damage_json(error),
            }
        )
    else:
        checked = f"{verifier.records} record{'s' if verifier.records != 1 else ''}"
        if not found:
            out.text(("ok:", "bold green"), f" {_LOG_INVARIANTS} hold over {checked}.")
        else:
            stop = "" if error is None else f"; checking stopped at seq {error.seq}"
            out.text(
                ("failed:", "bold red"),
                f" {len(found)} violation{'s' if len(found) != 1 else ''} in {checked}{stop}.",
            )
            for rule in ids:
                out.text(f"  {rule:<3} {INVARIANTS[rule]}")
    return 1 if found else 0


def persons_report(source: LogSource, out: Output) -> int:
    """PostHog's person graph after this log: 0 no person holds two users, 1 some does
    (or the log is damaged, so only the records before the damage were modelled)."""
    graph = PersonGraph()
    with closing(source.records()) as records:
        for record, _ in records:
            graph.feed(record)
    graph.finish()
    error = source.error
    flagged = [p.number for p in graph.flagged]
    if out.as_json:
        for person in graph.live:
            out.json(person.as_json(graph.users))
        for refusal in graph.refused:
            out.json(refusal.as_json())
        if error is not None:
            out.json(_damage_json(error))
        out.json(
            {
                "type": "summary",
                "persons": len(graph.live),
                "flagged": flagged,
                "refused": len(graph.refused),
                "personless_devices": graph.personless_devices,
                "complete": error is None,
            }
        )
    else:
        _persons_text(graph, out)
        if error is not None:
            # The checkpoint is the position after the last good record.
            out.text(*damage_line(error, source.checkpoint.seq))
    return 1 if flagged or error is not None else 0


def _persons_text(graph: PersonGraph, out: Output) -> None:
    for person in graph.live:
        users = person.users(graph.users)
        head: list[Part] = [
            (f"person {person.number}", "bold"),
            f"  {'identified' if person.identified else 'anonymous'}",
            f"  users: {', '.join(users) if users else 'none'}",
        ]
        if len(users) > 1:
            head.append(("  <- holds two users: two people merged into one", "bold red"))
        out.text(*head)
        kinds = ["user" if i in graph.users else "device" for i in person.distinct_ids]
        shown = ", ".join(f"{i} ({k})" for i, k in zip(person.distinct_ids, kinds, strict=True))
        out.text(f"  distinct ids: {shown}")
        for seq, note in person.history:
            out.text(f"  seq {seq}: {note}")
    for refusal in graph.refused:
        out.text(
            ("refused", "yellow"),
            f" seq {refusal.seq}: $create_alias({refusal.user_id} <- {refusal.device_id}): "
            f"{refusal.reason}",
        )
    count = len(graph.live)
    summary = (
        f"{count} person{'s' if count != 1 else ''}; "
        f"{graph.personless_devices} device id(s) never aliased (their events are personless)"
    )
    flagged = graph.flagged
    if flagged:
        names = "; ".join(f"person {p.number} ({', '.join(p.users(graph.users))})" for p in flagged)
        out.text(("failed:", "bold red"), f" {summary}. Holding two users: {names}.")
    else:
        out.text(("ok:", "bold green"), f" {summary}. No person holds two users.")
