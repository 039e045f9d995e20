"""The three reports over one log, printed: replay, verify and persons.

Each takes a log (a path, or a state dir holding one) and an
:class:`Output`, asks the public API (:mod:`._api`) for its answer,
printing rows as the log streams through, and returns the command's exit
code. The demo prints the same reports for its scenarios.
"""

from __future__ import annotations

from ._api import person_graph, timeline, verify_log
from ._render import (
    Output,
    Part,
    damage_line,
    identity_block,
    identity_json,
    promise_lines,
    timeline_header,
    timeline_line,
    timeline_row,
    transition_line,
    violation_line,
)
from ._verify import INVARIANTS

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from idstitch.events import LogDamagedError

    from ._api import PersonReport
    from ._timeline import Step
    from ._verify import Violation

__all__ = ["persons_report", "replay_report", "verify_report"]


def replay_report(log: str, out: Output, *, strict: bool = False) -> int:
    """The timeline, then the final identity: 0 read whole, 1 stopped at damage."""
    header = [not out.as_json]  # printed once the log is open, before its first row

    def row(step: Step) -> None:
        if header[0]:
            header[0] = False
            out.text(*timeline_header())
        if out.as_json:
            out.json(step.as_json())
        elif out.styled:
            out.text(*timeline_row(step))
        else:
            out.plain(timeline_line(step))

    found = timeline(log, strict=strict, on_step=row)
    if header[0]:
        out.text(*timeline_header())
    error = found.damage
    refused = found.refused
    if out.as_json:
        if error is not None:
            out.json(_damage_json(error))
        elif refused is not None:
            out.json(
                {
                    "type": "damage",
                    "seq": refused.seq,
                    "offset": found.refused_offset,
                    "cause": "transition",
                    "detail": str(refused),
                }
            )
        out.json(
            {
                "type": "identity",
                **identity_json(found.identity),
                "records": found.records,
                "aliases": found.aliases,
                "complete": found.complete,
            }
        )
    else:
        if error is not None:
            out.text(*damage_line(error, found.records))
        elif refused is not None:
            assert found.refused_offset is not None
            out.text(*transition_line(refused, found.refused_offset, found.records))
        title = "final identity" if found.complete else "identity before it"
        aliased = len(found.aliases)
        out.lines(
            identity_block(
                title,
                found.identity,
                extra=[
                    ("records", str(found.records)),
                    ("aliased", f"{aliased} device{'s' if aliased != 1 else ''}"),
                ],
            )
        )
    return 0 if found.complete else 1


def _damage_json(error: LogDamagedError) -> dict[str, object]:
    return {
        "type": "damage",
        "seq": error.seq,
        "offset": error.offset,
        "cause": error.cause,
        "detail": error.detail,
    }


def verify_report(log: str, out: Output, *, strict: bool = False) -> int:
    """Every violation of L1-L9 (and T), then a summary: 0 all hold, 1 violations."""

    def report(violation: Violation) -> None:
        if out.as_json:
            out.json(violation.as_json())
        else:
            out.text(*violation_line(violation))

    found = verify_log(log, strict=strict, on_violation=report)
    error = found.damage
    if out.as_json:
        out.json(
            {
                "type": "summary",
                "records": found.records,
                "violations": found.count,
                "ids": list(found.ids),
                "invariants": dict(INVARIANTS),
                "complete": found.complete,
                "stopped_at": None if error is None else _damage_json(error),
                "consent": None
                if found.consent is None
                else dict(zip(("telemetry", "seq", "at"), found.consent, strict=True)),
            }
        )
    else:
        checked = f"{found.records} record{'s' if found.records != 1 else ''}"
        if found.ok:
            out.text(("ok:", "bold green"), f" every promise below holds over {checked}.")
            out.lines(promise_lines(INVARIANTS))
        else:
            stop = "" if error is None else f"; checking stopped at seq {error.seq}"
            out.text(
                ("failed:", "bold red"),
                f" {found.count} violation{'s' if found.count != 1 else ''} in {checked}{stop}.",
            )
            out.lines(promise_lines(found.ids))
        if found.consent is not None:
            choice, seq, at = found.consent
            out.text(f"consent: telemetry {choice} by the user (seq {seq}, {at}).")
    return 0 if found.ok else 1


def persons_report(log: str, out: Output, *, strict: bool = False) -> int:
    """PostHog's person graph after this log: 0 no person holds two users, 1 some does
    (or the log is damaged, so only the records before the damage were modelled)."""
    found = person_graph(log, strict=strict)
    error = found.damage
    if out.as_json:
        for person in found.persons:
            out.json(person.as_json())
        for refusal in found.refused:
            out.json(refusal.as_json())
        if error is not None:
            out.json(_damage_json(error))
        out.json(
            {
                "type": "summary",
                "persons": len(found.persons),
                "flagged": list(found.flagged),
                "refused": len(found.refused),
                "personless_devices": found.personless_devices,
                "complete": error is None,
            }
        )
    else:
        _persons_text(found, out)
        if error is not None:
            out.text(*damage_line(error, found.records))
    return 0 if found.ok else 1


def _persons_text(graph: PersonReport, out: Output) -> None:
    for person in graph.persons:
        users = person.users
        head: list[Part] = [
            (f"person {person.number}", "bold"),
            f"  {'identified' if person.identified else 'anonymous'}",
            f"  users: {', '.join(users) if users else 'none'}",
        ]
        if person.flagged:
            head.append(("  <- holds two users: two people merged into one", "bold red"))
        out.text(*head)
        kinds = ["user" if i in users else "device" for i in person.distinct_ids]
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
    count = len(graph.persons)
    summary = (
        f"{count} person{'s' if count != 1 else ''}; "
        f"{graph.personless_devices} device id(s) never aliased (their events are personless)"
    )
    flagged = [person for person in graph.persons if person.flagged]
    if flagged:
        names = "; ".join(f"person {p.number} ({', '.join(p.users)})" for p in flagged)
        out.text(("failed:", "bold red"), f" {summary}. Holding two users: {names}.")
    else:
        out.text(("ok:", "bold green"), f" {summary}. No person holds two users.")
