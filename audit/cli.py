"""The ``idstitch`` command line: a thin layer of argument parsing over the audit modules.

Exit codes (the contract of ``shared/spec/interface.md``): 0 all good,
1 the answer is "no" (damage, violations, a person holding two users),
2 the input cannot be used at all (missing, unreadable, not a log, no
state). Every error is one line on stderr, never a traceback. When the
reader of the output goes away (``idstitch replay LOG | head -1``), every
command stops quietly with :data:`READER_GONE`, in :func:`main` alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Final, NoReturn

from ._render import Output, printable
from ._source import UnusableInputError, open_log

__all__ = ["READER_GONE", "build_parser", "main"]

#: The exit code when stdout's reader went away before the output ended: what a
#: shell reports for a command killed by SIGPIPE (128 + 13). The output was cut
#: short by the reader's choice, which 0 (all good), 1 (damage) or 2 would misstate.
READER_GONE: Final = 141


def _version() -> str:
    # importlib.metadata costs about 20 ms: only ``--version`` pays for it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("idstitch")
    except PackageNotFoundError:  # pragma: no cover - only when run from an uninstalled tree
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_: object) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show the installed version and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"idstitch {_version()}\n")
        parser.exit(0)


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
    parser.add_argument("--version", action=_VersionAction)
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
            "log", metavar="LOG", help="an identity.jsonl file, or a state dir holding one"
        )
        sub.add_argument(
            "--strict",
            action="store_true",
            help="also validate every record with the pydantic models (formats, legal ids); "
            "a record they refuse stops the read as damage (cause bad-field)",
        )
        return sub

    log_command("replay", "the timeline of a log, then its final identity")
    log_command("verify", "check invariants L1-L9 of a log")
    show = command("show", "the current identity of a state dir")
    show.add_argument("--state-dir", metavar="DIR", help="the state dir to read")
    show.add_argument("--app", metavar="NAME", help="read NAME's default state dir")
    log_command("persons", "PostHog's person graph after this log's aliases")
    doctor = command("doctor", "whether a state dir is healthy, and what a repair would do")
    doctor.add_argument("dir", metavar="DIR", nargs="?", help="the state dir to examine")
    doctor.add_argument("--app", metavar="NAME", help="examine NAME's default state dir")
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="heal it now, as the next run would: damaged files are kept aside, never deleted",
    )
    command("diagram", "the state diagram, drawn from the transition table").add_argument(
        "--format", choices=["mermaid"], default="mermaid", help="the diagram language"
    )
    command("demo", "the seed's scenarios end to end against a local capture server").add_argument(
        "--keep", metavar="DIR", help="run in DIR (created) and keep the state dirs and logs"
    )
    return parser


def _replay(args: argparse.Namespace, out: Output) -> int:
    from ._reports import replay_report

    return replay_report(open_log(args.log, strict=args.strict), out)


def _verify(args: argparse.Namespace, out: Output) -> int:
    from ._reports import verify_report

    return verify_report(open_log(args.log, strict=args.strict), out)


def _persons(args: argparse.Namespace, out: Output) -> int:
    from ._reports import persons_report

    return persons_report(open_log(args.log, strict=args.strict), out)


def _show(args: argparse.Namespace, out: Output) -> int:
    from ._render import identity_block, identity_json
    from ._show import inspect_state_dir, report_json, resolve_state_dir, show_rows

    report = inspect_state_dir(resolve_state_dir(args.state_dir, args.app))
    if out.as_json:
        out.json({"type": "identity", **identity_json(report.identity), **report_json(report)})
        return 0
    out.lines(identity_block(report.state_dir, report.identity, extra=show_rows(report)))
    for note in report.notes:
        out.text(("note:", "yellow"), f" {note}")
    return 0


def _doctor(args: argparse.Namespace, out: Output) -> int:
    from ._show import doctor_report, examine_state_dir, resolve_state_dir

    found = examine_state_dir(resolve_state_dir(args.dir, args.app), repair=args.repair)
    return doctor_report(found, out)


def _diagram(args: argparse.Namespace, out: Output) -> int:
    from idstitch.machine import TRANSITIONS, mermaid

    if not out.as_json:
        out.stream.write(mermaid())
        return 0
    for row in TRANSITIONS:
        out.json(
            {
                "type": "transition",
                "source": str(row.source),
                "event": row.event,
                "guard": row.guard,
                "target": str(row.target),
                "alias": row.alias,
                "why": row.why,
            }
        )
    return 0


def _demo(args: argparse.Namespace, out: Output) -> int:
    from ._demo import run_demo

    return run_demo(out, keep=args.keep)


_COMMANDS: dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "replay": _replay,
    "verify": _verify,
    "show": _show,
    "persons": _persons,
    "doctor": _doctor,
    "diagram": _diagram,
    "demo": _demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``idstitch`` with ``argv``; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stdout)
        return 0
    out = Output(sys.stdout, as_json=args.json)
    try:
        code = _COMMANDS[args.command](args, out)
        sys.stdout.flush()
    except UnusableInputError as exc:
        print(f"idstitch: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``idstitch replay LOG | head``): stop quietly. What is
        # still buffered then goes to devnull, so the flush at exit cannot fail loudly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return READER_GONE
    except KeyboardInterrupt:
        print("idstitch: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (a bug: please report)
        print(f"idstitch: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return code
