"""The argument parser of ``idstitch`` (argparse): ``--help``, ``--version`` and usage errors.

The command line parses the common forms of each command by hand
(:func:`idstitch.audit.cli.main`); this module, and argparse with it, is
imported only for what that does not take: help, the version, an
abbreviated option, a usage error. Both give the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from idstitch import __version__

__all__ = ["build_parser", "parse"]


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see idstitch --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``idstitch``."""
    parser = _Parser(
        prog="idstitch",
        description="Replay, verify and explain idstitch identity logs.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"idstitch {__version__}",
        help="show the installed version and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.add_argument(
            "--json", action="store_true", help="one JSON object per line (see docs/audit.md)"
        )
        return sub

    def log_command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = command(name, summary)
        sub.add_argument(
            "log",
            metavar="LOG",
            nargs="?",
            help="an identity.jsonl file, or a state dir holding one (or --state-dir, --app)",
        )
        sub.add_argument("--state-dir", metavar="DIR", help="read the log of this state dir")
        sub.add_argument("--app", metavar="NAME", help="read the log of NAME's default state dir")
        sub.add_argument(
            "--strict",
            action="store_true",
            help="also validate every record with the pydantic models (formats, legal ids); "
            "a record they refuse stops the read as damage (cause bad-field)",
        )
        return sub

    log_command("replay", "the timeline of a log, then its final identity")
    log_command("verify", "check that a log keeps its promises (invariants L1-L9), in words")
    show = command("show", "the current identity of a state dir")
    show.add_argument("--state-dir", metavar="DIR", help="the state dir to read")
    show.add_argument("--app", metavar="NAME", help="read NAME's default state dir")
    log_command("persons", "PostHog's person graph after this log's aliases")
    doctor = command("doctor", "whether a state dir is healthy, and what a repair would do")
    doctor.add_argument("dir", metavar="DIR", nargs="?", help="the state dir to examine")
    doctor.add_argument("--state-dir", metavar="DIR", help="the state dir to examine (as DIR)")
    doctor.add_argument("--app", metavar="NAME", help="examine NAME's default state dir")
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="heal it now, as the next run would: damaged files are kept aside, never deleted",
    )
    command("diagram", "the state diagram, drawn from the transition table").add_argument(
        "--format",
        choices=["mermaid", "text"],
        default="mermaid",
        help="mermaid (the default, for docs and GitHub) or text (for a terminal)",
    )
    command("demo", "the seed's scenarios end to end against a local capture server").add_argument(
        "--keep", metavar="DIR", help="run in DIR (created) and keep the state dirs and logs"
    )
    conform = command(
        "conform", "run the conformance vectors against a driver: idstitch conform -- COMMAND..."
    )
    conform.add_argument(
        "--vectors", metavar="DIR", help="the vectors of DIR (default: those installed)"
    )
    conform.add_argument(
        "--wire",
        action="store_true",
        help="also check what the driver's PostHog client sends to a local capture server",
    )
    conform.add_argument(
        "driver",
        metavar="COMMAND",
        nargs=argparse.REMAINDER,
        help="the driver command and its arguments, after --",
    )
    fleet = command(
        "fleet",
        "over a PostHog export, the persons holding two or more users, why, and a split plan",
    )
    fleet.add_argument(
        "--persons", metavar="GLOB", help="the persons export: Parquet or JSON lines, a glob or URL"
    )
    fleet.add_argument(
        "--events", metavar="GLOB", help="the events export: tells devices, explains the merges"
    )
    users = fleet.add_mutually_exclusive_group()
    users.add_argument("--users", metavar="FILE", help="the user ids, one a line")
    users.add_argument("--user-pattern", metavar="RE", help="a regex matching a whole user id")
    fleet.add_argument("--plan", metavar="FILE", help="write the split plan there (JSON lines)")
    fleet.add_argument(
        "--print-sql",
        metavar="ENGINE",
        choices=["duckdb", "clickhouse", "bigquery", "snowflake"],
        help="print the check's query for duckdb, clickhouse, bigquery or snowflake instead",
    )
    return parser


def parse(argv: Sequence[str] | None) -> dict[str, Any]:
    """``argv`` parsed (exits with usage errors, ``--help`` and ``--version``); ``command``
    is ``None`` when no command was given (the help has then been printed)."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    if args["command"] == "conform":
        driver = [word for word in args["driver"][:1] if word != "--"] + args["driver"][1:]
        if not driver:
            parser.error("conform needs a driver command after --")
        args["driver"] = driver
    if args["command"] is None:
        parser.print_help(sys.stdout)
    return args
