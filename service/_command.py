"""The command wrapper: times a host command and reports it with the identity at its end (R11).

One run reports once: a command entered while another of the same stitch is
open in this thread or task (the per-command decorator inside a whole-app
:func:`idstitch.instrument` run) reports nothing; the outermost one reports.
A run that reads or changes the user's telemetry choice (``telemetry
status|enable|disable``) reports nothing at all: :func:`unreport`.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._stitch import IdentityStitch

__all__ = ["EVENT", "Command", "exit_code", "outcome", "unreport"]

#: The event a command sends at its end.
EVENT = "cli_command_executed"

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE

#: The commands open in this thread or task that report their run (one per stitch).
_OPEN: ContextVar[tuple[Command, ...]] = ContextVar("idstitch_open_commands", default=())


def unreport(stitch: object) -> None:
    """The run of ``stitch``'s open command (if any) sends no event: the user is checking or
    changing their telemetry choice, which is not usage to count (nor, after a disable,
    allowed)."""
    for command in _OPEN.get():
        if command._stitch is stitch:
            command.quiet = True


class Command:
    """Times a command and reports it with the identity current at its end.

    ``name`` and ``properties`` may be set before the end (a whole-app run
    learns the command path as it parses); ``seen`` is the exception that
    left the command's body when a framework turned it into another ending
    (click makes a usage error ``SystemExit(2)`` and Ctrl-C ``Abort``, exit 1).
    ``notice`` is the first-run notice to show as the command starts
    (``None``: the one given to :meth:`IdentityStitch.open`, if any).
    """

    def __init__(
        self,
        stitch: IdentityStitch,
        name: str,
        flush_timeout: float,
        *,
        event: str = EVENT,
        notice: str | None = None,
    ) -> None:
        self._stitch = stitch
        self.name = name
        self._flush_timeout = flush_timeout
        self._event = event
        self._notice = notice
        self.properties: dict[str, Any] = {}
        self.seen: BaseException | None = None
        #: Set by :func:`unreport`: the run ends without its event.
        self.quiet = False
        self._started = 0.0
        self._token: Any = None

    @property
    def reports(self) -> bool:
        """Whether this command sends the event: no other command of its stitch was open."""
        return self._token is not None

    def __enter__(self) -> Command:
        self._started = time.monotonic()
        open_now = _OPEN.get()
        if not any(command._stitch is self._stitch for command in open_now):
            self._token = _OPEN.set((*open_now, self))
            self._stitch.first_run_notice(self._notice)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if self._token is None:
            return  # an outer command of this stitch reports the run
        _OPEN.reset(self._token)
        self._token = None
        if self.quiet:
            self._stitch.close(self._flush_timeout)
            return
        duration_ms = round((time.monotonic() - self._started) * 1000)
        self._stitch.capture(
            self._event,
            {
                "command": self.name,
                "duration_ms": duration_ms,
                **outcome(exc, self.seen),
                **self.properties,
            },
        )
        self._stitch.close(self._flush_timeout)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        stitch, name, timeout = self._stitch, self.name, self._flush_timeout
        event, notice = self._event, self._notice

        if _is_coroutine_function(func):
            # The command runs when the coroutine is awaited: time and report it then.
            @functools.wraps(func)
            async def waiting(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
                with Command(stitch, name, timeout, event=event, notice=notice):
                    return await func(*args, **kwargs)

            return waiting

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            with Command(stitch, name, timeout, event=event, notice=notice):
                return func(*args, **kwargs)

        return wrapper


def _is_coroutine_function(func: object) -> bool:
    """``async def`` (checked on the code object: ``inspect`` costs start-up)."""
    code = getattr(func, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


def exit_code(exc: BaseException | None) -> int:
    """The exit code a command ends with: 0, ``SystemExit``'s code, click's ``Exit``, 130 or 1."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        return int(code) if isinstance(code, int) else 1  # sys.exit(False) exits 0
    click_code = getattr(exc, "exit_code", None)  # click.exceptions.Exit / typer.Exit
    if type(click_code) is int:
        return click_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


def outcome(ended: BaseException | None, seen: BaseException | None = None) -> dict[str, Any]:
    """How a command ended, as event properties: ``exit_code``, and ``error_type`` (the
    exception's class name, never its message) or ``interrupted: True`` (Ctrl-C: exit code
    130, whatever the framework then exits with).

    ``ended`` left the command (``None``: it returned); ``seen``, when given, is what left
    its body before a framework turned it into ``ended``: its class names the error, and a
    Ctrl-C behind it (itself, or the cause of click's ``Abort``) counts as an interrupt.
    """
    cause = seen if seen is not None else ended
    if _interrupt(cause):
        return {"exit_code": 130, "interrupted": True}
    found: dict[str, Any] = {"exit_code": exit_code(ended)}
    if ended is None and seen is not None:
        found["exit_code"] = exit_code(seen)  # click's standalone_mode=False returns the code
    if cause is not None and not _is_exit(cause):
        found["error_type"] = type(cause).__name__
    return found


def _interrupt(exc: BaseException | None) -> bool:
    """Ctrl-C, or an exception raised while handling one (click's ``Abort`` at a prompt)."""
    if exc is None or isinstance(exc, SystemExit):
        return False
    return any(isinstance(e, KeyboardInterrupt) for e in (exc, exc.__cause__, exc.__context__))


def _is_exit(exc: BaseException) -> bool:
    """An exit on purpose: ``sys.exit``, or click's (and typer's) ``Exit``, which are no errors."""
    return isinstance(exc, SystemExit) or any(k.__name__ == "Exit" for k in type(exc).__mro__)
