"""The ``idstitch`` command line: argument parsing and printing over :mod:`idstitch.audit`'s API.

Exit codes (the contract of ``shared/spec/interface.md``): 0 all good,
1 the answer is "no" (damage, violations, a person holding two users),
2 the input cannot be used at all (missing, unreadable, not a log, no
state). Every error is one line on stderr, never a traceback. When the
reader of the output goes away (``idstitch replay LOG | head -1``), every
command stops quietly with :data:`READER_GONE`, in :func:`main` alone.
"""

from __future__ import annotations

import os
import sys

from ._render import Output, printable
from ._source import UnusableInputError, resolve_log

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any, Final

__all__ = ["READER_GONE", "build_parser", "main"]

#: The exit code when stdout's reader went away before the output ended: what a
#: shell reports for a command killed by SIGPIPE (128 + 13). The output was cut
#: short by the reader's choice, which 0 (all good), 1 (damage) or 2 would misstate.
READER_GONE: Final = 141


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``idstitch`` (argparse, imported now)."""
    from ._parser import build_parser

    return build_parser()


#: Each command's grammar for the hand-written parse: its flags (``--json`` -> ``json``),
#: its options that take a value with their defaults, and its positional (name, required).
_GRAMMAR: Final[
    dict[str, tuple[tuple[str, ...], dict[str, str | None], tuple[str, bool] | None]]
] = {
    "replay": (("--json", "--strict"), {"--state-dir": None, "--app": None}, ("log", False)),
    "verify": (("--json", "--strict"), {"--state-dir": None, "--app": None}, ("log", False)),
    "persons": (("--json", "--strict"), {"--state-dir": None, "--app": None}, ("log", False)),
    "show": (("--json",), {"--state-dir": None, "--app": None}, None),
    "doctor": (("--json", "--repair"), {"--state-dir": None, "--app": None}, ("dir", False)),
    "diagram": (("--json",), {"--format": "mermaid"}, None),
    "demo": (("--json",), {"--keep": None}, None),
    # The driver command follows ``--`` (parse_fast takes it off first).
    "conform": (("--json", "--wire"), {"--vectors": None}, None),
    "fleet": (
        ("--json",),
        {
            "--persons": None,
            "--events": None,
            "--users": None,
            "--user-pattern": None,
            "--plan": None,
            "--print-sql": None,
        },
        None,
    ),
}
#: The values an option may take in the hand-written parse (others: argparse decides).
_CHOICES: Final = {
    "--format": ("mermaid", "text"),
    "--print-sql": ("duckdb", "clickhouse", "bigquery", "snowflake"),
}


def _dest(option: str) -> str:
    return option[2:].replace("-", "_")


def _driver_command(
    command: str, argv: Sequence[str]
) -> tuple[Sequence[str], dict[str, Any] | None]:
    """``conform [options] -- COMMAND...``: the words before ``--``, and the driver command
    after it (``None``: no command, argparse says so); other commands' words as they are."""
    if command != "conform":
        return argv, {}
    if "--" not in argv or argv[-1] == "--":
        return argv, None
    cut = list(argv).index("--")
    return argv[:cut], {"driver": list(argv[cut + 1 :])}


def parse_fast(argv: Sequence[str]) -> dict[str, Any] | None:
    """``argv`` parsed by hand, exactly as argparse would, when it is one of the plain forms
    (each option spelled in full, at most once, no value starting with ``-``); ``None`` for
    anything else (help, the version, an abbreviation, a usage error), which argparse takes.

    argparse alone costs several milliseconds of every run's start.
    """
    if not argv or argv[0] not in _GRAMMAR:
        return None
    command = argv[0]
    flags, options, positional = _GRAMMAR[command]
    argv, extra = _driver_command(command, argv)
    if extra is None:
        return None
    args: dict[str, Any] = {"command": command, **extra}
    args |= {_dest(flag): False for flag in flags}
    args |= {_dest(option): default for option, default in options.items()}
    seen: set[str] = set()
    words: list[str] = []
    rest = iter(argv[1:])
    for word in rest:
        if not word.startswith("-"):
            words.append(word)
        elif word in seen:
            return None
        elif word in flags:
            seen.add(word)
            args[_dest(word)] = True
        elif word in options:
            seen.add(word)
            value = next(rest, None)
            if value is None or value.startswith("-"):
                return None
            if word in _CHOICES and value not in _CHOICES[word]:
                return None
            args[_dest(word)] = value
        else:
            return None
    if positional is None:
        return None if words else args
    name, required = positional
    if len(words) > 1 or (required and not words):
        return None
    args[name] = words[0] if words else None
    return args


def _log(args: dict[str, Any]) -> str:
    """The log a command reads: ``LOG``, or the log of ``--state-dir`` or ``--app``'s dir."""
    return resolve_log(args["log"], state_dir=args["state_dir"], app=args["app"])


def _replay(args: dict[str, Any], out: Output) -> int:
    from ._reports import replay_report

    return replay_report(_log(args), out, strict=args["strict"])


def _verify(args: dict[str, Any], out: Output) -> int:
    from ._reports import verify_report

    return verify_report(_log(args), out, strict=args["strict"])


def _persons(args: dict[str, Any], out: Output) -> int:
    from ._reports import persons_report

    return persons_report(_log(args), out, strict=args["strict"])


def _show(args: dict[str, Any], out: Output) -> int:
    from ._api import state_report
    from ._render import identity_block, identity_json
    from ._show import report_json, show_rows

    report = state_report(args["state_dir"], app=args["app"])
    if out.as_json:
        out.json({"type": "identity", **identity_json(report.identity), **report_json(report)})
        return 0
    out.lines(identity_block(report.state_dir, report.identity, extra=show_rows(report)))
    for note in report.notes:
        out.text(("note:", "yellow"), f" {note}")
    return 0


def _doctor(args: dict[str, Any], out: Output) -> int:
    from ._api import diagnosis
    from ._show import doctor_report

    if args["dir"] is not None and args["state_dir"] is not None:
        raise UnusableInputError("give the state dir once: DIR or --state-dir DIR, not both")
    folder = args["dir"] if args["dir"] is not None else args["state_dir"]
    found = diagnosis(folder, app=args["app"], repair=args["repair"])
    return doctor_report(found, out)


def _diagram(args: dict[str, Any], out: Output) -> int:
    from ._api import diagram

    if not out.as_json:
        out.stream.write(diagram(args["format"]))
        return 0
    from idstitch.machine import TRANSITIONS

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


def _conform(args: dict[str, Any], out: Output) -> int:
    from ._conform import conform_report

    return conform_report(args["driver"], out, vectors=args["vectors"], wire=args["wire"])


def _demo(args: dict[str, Any], out: Output) -> int:
    from ._demo import run_demo

    return run_demo(out, keep=args["keep"])


def _fleet(args: dict[str, Any], out: Output) -> int:
    from idstitch.fleet._cli import fleet_command

    return fleet_command(args, out)


_COMMANDS: dict[str, Callable[[dict[str, Any], Output], int]] = {
    "replay": _replay,
    "verify": _verify,
    "show": _show,
    "persons": _persons,
    "doctor": _doctor,
    "diagram": _diagram,
    "demo": _demo,
    "conform": _conform,
    "fleet": _fleet,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``idstitch`` with ``argv``; return the exit code."""
    args = parse_fast(sys.argv[1:] if argv is None else argv)
    if args is None:
        from ._parser import parse

        args = parse(argv)
        if args["command"] is None:  # the help was printed
            return 0
    out = Output(sys.stdout, as_json=args["json"])
    try:
        code = _COMMANDS[args["command"]](args, out)
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
