"""``idstitch fleet``: the fleet audit printed as ``idstitch persons`` prints (text or JSON lines).

Exit codes: 0 no person holds two users, 1 some does, 2 an export (or the
users file) cannot be read; ``--print-sql ENGINE`` prints the query and
exits 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from idstitch.audit import UnusableInputError

if TYPE_CHECKING:
    from idstitch.audit._render import Output

    from ._api import FleetReport

__all__ = ["fleet_command"]


def _read_users(path: str) -> list[str]:
    """The user ids of ``--users FILE``: one a line (blank lines and ``#`` comments skipped)."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UnusableInputError(f"cannot read the users file {path!r}: {exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def fleet_command(args: dict[str, Any], out: Output) -> int:
    """Run ``idstitch fleet`` with parsed ``args``; the exit code."""
    if args["users"] is not None and args["user_pattern"] is not None:
        raise UnusableInputError("tell users from devices once: --users FILE or --user-pattern RE")
    if args["print_sql"] is not None:
        from ._query import render_sql

        try:
            sql = render_sql(
                args["print_sql"], user_pattern=args["user_pattern"], users=bool(args["users"])
            )
        except ValueError as exc:
            raise UnusableInputError(str(exc)) from None
        out.stream.write(sql)
        return 0
    if args["persons"] is None:
        raise UnusableInputError("name the persons export: --persons GLOB")
    from ._api import fleet_audit

    report = fleet_audit(
        args["persons"],
        events=args["events"],
        users=None if args["users"] is None else _read_users(args["users"]),
        user_pattern=args["user_pattern"],
        progress=not out.as_json and out.stream.isatty(),
    )
    if args["plan"] is not None:
        _write_plan(report, args["plan"])
    if out.as_json:
        _json(report, out, args["plan"])
    else:
        _text(report, out, args["plan"])
    return 0 if report.ok else 1


def _write_plan(report: FleetReport, path: str) -> None:
    import json

    try:
        with open(path, "w", encoding="utf-8") as file:
            for person in report.persons:
                file.write(json.dumps(person.plan()) + "\n")
    except OSError as exc:
        raise UnusableInputError(f"cannot write the plan {path!r}: {exc}") from None


def _json(report: FleetReport, out: Output, plan: str | None) -> None:
    for person in report.persons:
        out.json(person.as_json())
    for device in report.devices:
        out.json(device.as_json())
    for illegal in report.illegal:
        out.json(illegal.as_json())
    out.json(
        {
            "type": "summary",
            "flagged": len(report.persons),
            "shared_devices": len(report.devices),
            "illegal": len(report.illegal),
            "explained": report.explained,
            "users_from": report.users_from,
            "plan": plan,
        }
    )


def _text(report: FleetReport, out: Output, plan: str | None) -> None:
    from idstitch.audit._persons import BRANCHES

    for person in report.persons:
        out.text(
            (f"person {person.person_id}", "bold"),
            f"  team {person.team_id}  users: {', '.join(person.users)}",
            ("  <- holds two users: two people merged into one", "bold red"),
        )
        if person.devices:
            out.text(f"  devices: {', '.join(person.devices)}")
        sure = "" if person.keep_known else " (a guess)"
        out.text(f"  keep {person.keep}{sure}: {person.keep_reason}")
        for join in person.joins:
            call = f"{join.event}({join.distinct_id} <- {join.other})"
            out.text(f"  {join.user} joined at {join.time} by {call}: {BRANCHES[join.branch]}")
        out.text(f"  split off: {', '.join(person.split)}")
    for device in report.devices:
        out.text(
            ("device", "yellow"),
            f" {device.device} aliased to {len(device.users)} users: "
            + "; ".join(f"{e}({u} <- {device.device}) at {t}" for t, e, u in device.aliases),
        )
    for illegal in report.illegal:
        out.text(("illegal", "yellow"), f" {illegal.distinct_id!r}: {illegal.problem}")
    if report.persons:
        where = f"; split plan in {plan}" if plan is not None else "; --plan FILE writes the plan"
        count = len(report.persons)
        out.text(
            ("failed:", "bold red"),
            f" {count} person{'s hold' if count != 1 else ' holds'} two or more users{where}.",
        )
    else:
        out.text(("ok:", "bold green"), " no person holds two users.")
