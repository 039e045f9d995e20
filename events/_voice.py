"""The library's voice: every message goes through ``logging.getLogger("idstitch…")``.

A library must not print to its host's terminal. The standard library's
rule for libraries is one :class:`logging.NullHandler` on the package's
logger: records then stop there unless the host configures logging, and
Python's last-resort handler (which writes warnings to stderr) never
speaks for idstitch. ``logging`` is imported on the first message, never
at start-up.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    import logging

__all__ = ["ROOT_LOGGER", "debug", "get_logger", "warn"]

#: The logger every idstitch logger descends from.
ROOT_LOGGER = "idstitch"

_installed = False


def get_logger(name: str = ROOT_LOGGER) -> logging.Logger:
    """The logger ``name`` (under ``idstitch``), with the package's ``NullHandler`` in place."""
    import logging

    global _installed  # noqa: PLW0603 - installed once per process
    if not _installed:
        root = logging.getLogger(ROOT_LOGGER)
        if not any(isinstance(handler, logging.NullHandler) for handler in root.handlers):
            root.addHandler(logging.NullHandler())
        _installed = True
    return logging.getLogger(name)


def debug(name: str, message: str, *args: object) -> None:
    """Log ``message % args`` at DEBUG on logger ``name``."""
    if _listening():
        get_logger(name).debug(message, *args)


def warn(name: str, message: str, *args: object) -> None:
    """Log ``message % args`` at WARNING on logger ``name``: once per problem, saying what was
    kept and how to look."""
    if _listening():
        get_logger(name).warning(message, *args)


def _listening() -> bool:
    """Whether anyone could hear: a handler exists only once ``logging`` was imported.

    Otherwise the message would stop at the package's ``NullHandler`` anyway, so a
    start that has nothing to say to a listener never pays for importing ``logging``.
    """
    return "logging" in sys.modules
