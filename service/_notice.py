"""The host's first-run telemetry notice: shown once per state dir, on a terminal's stderr.

The rules (docs/integration.md, "The first-run notice"): once per state dir
(the ``notice-shown`` marker), only when stderr is a terminal, never in CI
or another ephemeral runtime, never when opted out. With
``notice_before_sending`` the host's sink is held back (a ``NullSink`` that
queues nothing and asks for no alias stands in) until the notice was shown
on this machine (Homebrew's rule).
"""

from __future__ import annotations

import os

from idstitch.events._voice import debug
from idstitch.store._names import NOTICE_NAME

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import Any

__all__ = ["is_terminal", "show_notice"]


def show_notice(state_dir: str, device_id: str, text: str, stream: Any) -> bool:  # noqa: ANN401
    """Print ``text`` to ``stream`` (stderr) unless the state dir says it was shown; ``True``
    if printed. A notice that cannot be printed or recorded is not marked, so the next run
    tries again; nothing raises."""
    import sys

    marker = os.path.join(state_dir, NOTICE_NAME)
    try:
        from idstitch.store._fs import open_file

        fd = open_file(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    except OSError as exc:
        debug("idstitch.service", "idstitch: cannot record the notice (%r); not shown", exc)
        return False
    try:
        os.write(fd, f"{device_id}\n".encode())
        print(text, file=stream if stream is not None else sys.stderr, flush=True)
    except (OSError, ValueError) as exc:  # a full disk, a closed or broken stderr
        debug("idstitch.service", "idstitch: the notice could not be recorded or shown (%r)", exc)
        import contextlib

        with contextlib.suppress(OSError):  # not shown, so not marked: the next run tries
            os.unlink(marker)
        return False
    finally:
        os.close(fd)
    return True


def is_terminal(stream: Any) -> bool:  # noqa: ANN401 - any text stream
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
