"""Opening a log for an audit, and streaming its checked records with their byte offsets.

An audit reads a log someone handed over: a path to ``identity.jsonl``, a
state dir holding one, or a CI artifact. Anything that cannot be read as a
log at all (missing, a directory without a log, unreadable, not a log) is
an :class:`UnusableInputError` (exit 2). A log that *is* one but damaged
is read up to the damage; the damage is kept in :attr:`LogSource.error`.

Reading streams: one line in memory at a time, whatever the log's size.
"""

from __future__ import annotations

import os

from idstitch.events import Checkpoint, LogDamagedError, RecordReader
from idstitch.store._line import LIGHT_READ_BYTES
from idstitch.store._line import LINE_START as _LINE_START
from idstitch.store._names import LOG_NAME

from ._progress import DelayedProgress

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Generator, Mapping
    from typing import IO, Final

    from idstitch.events import Record

__all__ = ["LogSource", "UnusableInputError", "open_log", "resolve_log"]

_GZIP_MAGIC: Final = b"\x1f\x8b"


class UnusableInputError(Exception):
    """The input cannot be audited at all: the command exits 2 with this one-line message."""


class LogSource:
    """A log opened for reading; iterate :meth:`records` once.

    After the iteration, :attr:`error` is the damage that stopped it (or
    ``None``) and :attr:`checkpoint` the position after the last good record.
    """

    def __init__(self, path: str, stream: IO[bytes], size: int, *, strict: bool = False) -> None:
        self.path = path
        self.size = size
        self.strict = strict
        self._stream = stream
        self.error: LogDamagedError | None = None
        self.checkpoint = Checkpoint(0, "0" * 32, 0)

    def records(self, *, progress: bool = True) -> Generator[tuple[Record, int], None, None]:
        """Yield ``(record, offset)`` for each good record; stop quietly at damage."""
        stream = self._stream
        light = self.size <= LIGHT_READ_BYTES
        reader = RecordReader(lambda: stream, strict=self.strict, light=light)
        bar = DelayedProgress(self.size, stream.tell) if progress else None
        offset = 0
        try:
            for record in reader:
                end = stream.tell()
                yield record, offset
                offset = end
                if bar is not None:
                    bar.tick()
        except LogDamagedError as exc:
            self.error = exc
        finally:
            if bar is not None:
                bar.close()
            self.checkpoint = reader.checkpoint
            stream.close()

    def line_at(self, offset: int, limit: int = 65536) -> bytes:
        """The bytes of the line starting at ``offset`` (for explaining damage); never raises."""
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                return f.readline(limit)
        except OSError:
            return b""


def open_log(argument: str, *, strict: bool = False) -> LogSource:
    """Open ``argument`` (a log file, or a state dir holding ``identity.jsonl``) for auditing.

    ``strict``: its records are read with the pydantic models' validation too.

    Raises :class:`UnusableInputError` naming the problem when it cannot be read as a log.
    """
    path = argument
    if os.path.isdir(path):
        path = os.path.join(path, LOG_NAME)
        if not os.path.lexists(path):
            raise UnusableInputError(f"{argument} is a directory with no {LOG_NAME} in it")
    if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
        # A FIFO or a device would block or never end: only regular files are logs.
        raise UnusableInputError(f"{path} is not a regular file")
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by LogSource.records
    except FileNotFoundError:
        raise UnusableInputError(f"{argument}: no such file") from None
    except IsADirectoryError:
        raise UnusableInputError(f"{path} is a directory, not a log") from None
    except PermissionError:
        raise UnusableInputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UnusableInputError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        size = os.fstat(stream.fileno()).st_size
        head = stream.read(len(_LINE_START))
        stream.seek(0)
    except OSError as exc:
        stream.close()
        raise UnusableInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if head and not _LINE_START.startswith(head[: len(_LINE_START)]):
        stream.close()
        if head.startswith(_GZIP_MAGIC):
            raise UnusableInputError(f"{path} is gzip-compressed: gunzip it first")
        raise UnusableInputError(
            f'{path} is not an idstitch identity log (its first line does not start with {{"v":)'
        )
    return LogSource(path, stream, size, strict=strict)


def resolve_log(
    log: str | None,
    *,
    state_dir: str | None = None,
    app: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The log ``replay``, ``verify`` and ``persons`` read: ``LOG`` itself, or else the state
    dir ``--state-dir`` or ``--app`` names (it must hold a log).

    Raises :class:`UnusableInputError` (exit 2) when none or both are given, or the
    state dir holds no log.
    """
    if log is not None:
        if state_dir is not None or app is not None:
            raise UnusableInputError("give the log once: LOG, or --state-dir DIR or --app NAME")
        return log
    if state_dir is None and app is None:
        raise UnusableInputError(
            "a log is needed: LOG (a file or a state dir), --state-dir DIR or --app NAME"
        )
    from ._show import resolve_state_dir

    folder = resolve_state_dir(state_dir, app, os.environ if env is None else env)
    whose = f" ({app}'s state dir)" if state_dir is None else ""
    if not os.path.isdir(folder):
        raise UnusableInputError(f"no state: {folder}{whose} does not exist")
    if not os.path.lexists(os.path.join(folder, LOG_NAME)):
        raise UnusableInputError(f"no log: {folder}{whose} holds no {LOG_NAME}")
    return folder
