"""A progress bar on stderr for long reads, shown only when it helps.

Nothing appears unless the read has already taken longer than a delay
(1 s, or ``IDSTITCH_PROGRESS_DELAY`` seconds) and stderr is a terminal: a
short replay, a pipe or a CI log never sees it. The bar measures bytes
read, so it costs one clock reading per thousand records until it shows.
``rich`` is imported only when the bar is actually drawn; without it (installed
without the ``idstitch[audit]`` extra) there is no bar.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

__all__ = ["DelayedProgress"]

_CHECK_EVERY: Final = 1024
_DEFAULT_DELAY: Final = 1.0


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get("IDSTITCH_PROGRESS_DELAY", _DEFAULT_DELAY)))
    except ValueError:
        return _DEFAULT_DELAY


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except ValueError:  # stderr closed
        return False


class DelayedProgress:
    """Call :meth:`tick` once per record and :meth:`close` at the end."""

    def __init__(self, total: int, position: Callable[[], int]) -> None:
        self._total = total
        self._position = position
        self._started = time.monotonic()
        self._delay = _delay()
        self._count = 0
        self._enabled = _stderr_is_terminal()
        self._bar: Any = None
        self._task: Any = None

    def tick(self) -> None:
        """One more record read; draws or advances the bar now and then."""
        self._count += 1
        if not self._enabled or self._count % _CHECK_EVERY:
            return
        if self._bar is None:
            if time.monotonic() - self._started < self._delay:
                return
            self._show()
            if self._bar is None:  # rich is not installed: no bar
                self._enabled = False
                return
        self._bar.update(self._task, completed=self._position())

    def _show(self) -> None:
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )
        except ImportError:  # installed without the [audit] extra: no bar, the same output
            return

        self._bar = Progress(
            TextColumn("reading the log"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("log", total=self._total)

    def close(self) -> None:
        """Remove the bar, if one was drawn."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
