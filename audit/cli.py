"""The ``idstitch`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

__all__ = ["main"]


def _version() -> str:
    try:
        return version("idstitch")
    except PackageNotFoundError:  # pragma: no cover - only when run from an uninstalled tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``idstitch``."""
    parser = argparse.ArgumentParser(
        prog="idstitch",
        description="Replay, verify and explain idstitch identity logs.",
    )
    parser.add_argument("--version", action="version", version=f"idstitch {_version()}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``idstitch`` with ``argv``; return the exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help(sys.stdout)
    return 0
