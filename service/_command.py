"""The command wrapper: times a host command and reports it with the identity at its end (R11)."""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._stitch import IdentityStitch

__all__ = ["Command", "exit_code"]

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE


class Command:
    """Times a command and reports it with the identity current at its end."""

    def __init__(self, stitch: IdentityStitch, name: str, flush_timeout: float) -> None:
        self._stitch = stitch
        self._name = name
        self._flush_timeout = flush_timeout
        self._started = 0.0

    def __enter__(self) -> Command:
        self._started = time.monotonic()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        duration_ms = round((time.monotonic() - self._started) * 1000)
        self._stitch.capture(
            "cli_command_executed",
            {"command": self._name, "duration_ms": duration_ms, "exit_code": exit_code(exc)},
        )
        self._stitch.close(self._flush_timeout)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        if _is_coroutine_function(func):
            # The command runs when the coroutine is awaited: time and report it then.
            @functools.wraps(func)
            async def waiting(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
                with Command(self._stitch, self._name, self._flush_timeout):
                    return await func(*args, **kwargs)

            return waiting

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            with Command(self._stitch, self._name, self._flush_timeout):
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
