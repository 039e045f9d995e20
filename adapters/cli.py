"""Whole-app wiring for click and typer: one call reports every command of a CLI.

:func:`instrument` wraps the root command of a click app (or the click
command typer builds for a typer app) at instance level, never click's
classes: its ``main`` times the whole run and sends one event, and each
command click reaches records, as click makes its context, where the run
got to. So usage errors, ``--help``, Ctrl-C and ``sys.exit`` are reported
too, which a decorator inside the command cannot see.

Neither click nor typer is imported here except by :func:`instrument`
itself (typer's own classes, for a typer app); a CLI that never calls it
pays nothing.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar

from idstitch.service._command import EVENT, Command

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from idstitch.service import IdentityStitch

    App = TypeVar("App")

__all__ = ["instrument"]

#: Where a wired root keeps what :func:`instrument` asked for (a second call replaces it).
_WIRING = "_idstitch_wiring"
#: Set on every command whose methods are wired (each is wired once).
_WIRED = "_idstitch_wired"


class _Wiring:
    """What one :func:`instrument` call asked for."""

    __slots__ = ("event", "flush_timeout", "notice", "stitch")

    def __init__(
        self, stitch: IdentityStitch, notice: str | None, flush_timeout: float, event: str
    ) -> None:
        self.stitch = stitch
        self.notice = notice
        self.flush_timeout = flush_timeout
        self.event = event


class _Run:
    """One run of a wired root: what click reached as it parsed and invoked."""

    __slots__ = ("command", "help", "path", "root_name", "seen", "wiring")

    def __init__(self, wiring: _Wiring) -> None:
        self.wiring = wiring
        self.command: Command | None = None
        self.root_name = ""
        self.path: list[str] = []
        self.help = False
        self.seen: BaseException | None = None

    def begin(self) -> None:
        """The command starts (not a shell-completion run): start the clock, show the notice."""
        wiring = self.wiring
        self.command = Command(
            wiring.stitch,
            "",
            wiring.flush_timeout,
            event=wiring.event,
            notice=wiring.notice,
        )
        self.command.__enter__()

    def entered(self, command: Any, info_name: str | None, parent: Any) -> None:  # noqa: ANN401
        """Click makes ``command``'s context: the run got that far."""
        name = command.name or info_name or ""
        if parent is None:
            self.root_name, self.path = name, []
        else:
            self.path = [*_path(parent), name]

    def end(self, ended: BaseException | None) -> None:
        """Send the run's one event (nothing for a completion run, which never began)."""
        command = self.command
        if command is None:
            return
        command.name = " ".join(self.path) or self.root_name
        command.seen = self.seen
        if self.help:
            command.properties["help"] = True
        command.__exit__(type(ended) if ended is not None else None, ended, None)


#: The run of a wired root in progress in this thread or task.
_RUN: ContextVar[_Run | None] = ContextVar("idstitch_cli_run", default=None)


def instrument(
    app: App,
    stitch: IdentityStitch,
    *,
    notice: str | None = None,
    flush_timeout: float = 2.0,
    event: str = EVENT,
) -> App:
    """Report every command of ``app`` (a click ``Group`` or ``Command``, or a ``typer.Typer``).

    Each run sends one ``event`` naming the command path without the program
    name (``"db push"``; the root's name when no subcommand ran), with
    ``duration_ms`` and ``exit_code``: also usage errors (2), ``--help``
    (0, with ``help: True``), ``sys.exit(n)``, ``ctx.exit(n)``, an exception
    (1, its class name as ``error_type``, never its message) and Ctrl-C
    (``exit_code`` 130 and ``interrupted: True``, while click itself prints
    "Aborted!" and exits 1). A shell-completion run sends nothing. The app's
    output, exit codes and return values are unchanged.

    ``notice`` (or the one given to :meth:`IdentityStitch.open`) is shown on
    stderr as the command starts, under the notice's rules. The per-command
    ``stitch.command(name)`` decorator inside a wired app sends nothing: the
    run's event covers it. Returns ``app``; calling it again replaces the
    settings. Raises ``TypeError`` for anything but a click command or a typer app.
    """
    wiring = _Wiring(stitch, notice, flush_timeout, event)
    typer = sys.modules.get("typer")
    if typer is not None and isinstance(app, typer.Typer):
        _wire_typer(app, wiring)
    elif callable(getattr(app, "main", None)) and callable(getattr(app, "make_context", None)):
        _wire_root(app, wiring)
    else:
        msg = f"instrument() takes a click command or group, or a typer.Typer; got {app!r}"
        raise TypeError(msg)
    return app


def _wire_typer(app: Any, wiring: _Wiring) -> None:  # noqa: ANN401 - a typer.Typer
    """Typer builds a fresh click command on every call (``typer.main.get_command``), from
    the ``cls`` of the app (a group) or of its one command: both become wired subclasses,
    so ``app()``, ``typer.testing.CliRunner`` and ``get_command(app)`` all report."""
    from typer.core import TyperGroup

    current = getattr(app.info, "cls", None)
    base = current if isinstance(current, type) else TyperGroup
    app.info.cls = _wired_class(base, wiring)
    for info in app.registered_commands:  # a single-command app is that command, not a group
        info.cls = _wired_class(info.cls, wiring)


def _wired_class(base: type[Any], wiring: _Wiring) -> type[Any]:
    """A subclass of ``base`` (typer's, or the host's ``cls=``) whose instances are wired."""
    base = getattr(base, "_idstitch_base", base)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401, N807
        base.__init__(self, *args, **kwargs)
        _wire_root(self, wiring)

    return type(base.__name__, (base,), {"__init__": __init__, "_idstitch_base": base})


def _wire_root(root: Any, wiring: _Wiring) -> None:  # noqa: ANN401 - a click command
    """Wrap the root's ``main`` on the instance; its commands are wired as click reaches them."""
    fresh = _WIRING not in vars(root)
    vars(root)[_WIRING] = wiring
    if not fresh:
        return
    main = root.main

    def wired_main(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        run = _Run(vars(root)[_WIRING])
        token = _RUN.set(run)
        try:
            if not callable(getattr(root, "_main_shell_completion", None)):
                run.begin()  # an old click: no completion hook to wait for
            result = main(*args, **kwargs)
        except BaseException as exc:
            run.end(exc)
            raise
        else:
            run.end(None)
            return result
        finally:
            _RUN.reset(token)

    vars(root)["main"] = wired_main
    _wrap(root, "_main_shell_completion", _after_completion_check)
    _wrap(root, "invoke", _noting_what_leaves)
    _wire_command(root)


def _wire_command(command: Any) -> None:  # noqa: ANN401 - a click command
    """Note, on the instance, when click makes ``command``'s context or shows its help; a
    group's subcommands are wired as it resolves them (lazy groups and typer included)."""
    if vars(command).get(_WIRED):
        return
    vars(command)[_WIRED] = True
    _wrap(command, "make_context", _entering)
    _wrap(command, "get_help", _noting_help)
    _wrap(command, "resolve_command", _wiring_subcommands)


def _wrap(command: Any, name: str, wrapper: Callable[..., Any]) -> None:  # noqa: ANN401
    """Put ``wrapper(command, original, *args, **kwargs)`` in place of the instance's method."""
    original = getattr(command, name, None)
    if not callable(original):
        return

    def wrapped(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        return wrapper(command, original, *args, **kwargs)

    vars(command)[name] = wrapped


def _after_completion_check(command: Any, original: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
    """Click answers a shell-completion request here and exits; otherwise the command begins."""
    result = original(*args, **kwargs)
    run = _RUN.get()
    if run is not None and run.command is None:
        run.begin()
    return result


def _noting_what_leaves(command: Any, original: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
    """What leaves the root's ``invoke`` is what click's ``main`` then turns into an exit."""
    try:
        return original(*args, **kwargs)
    except BaseException as exc:
        run = _RUN.get()
        if run is not None:
            run.seen = exc
        raise


def _entering(command: Any, original: Any, info_name: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
    """Click makes ``command``'s context (and parses its arguments: a usage error, ``--help``)."""
    run = _RUN.get()
    if run is None:
        return original(info_name, *args, **kwargs)
    run.entered(command, info_name, kwargs.get("parent", args[1] if len(args) > 1 else None))
    try:
        return original(info_name, *args, **kwargs)
    except BaseException as exc:
        run.seen = exc
        raise


def _noting_help(command: Any, original: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
    run = _RUN.get()
    if run is not None:
        run.help = True
    return original(*args, **kwargs)


def _wiring_subcommands(command: Any, original: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
    name, subcommand, rest = original(*args, **kwargs)
    if subcommand is not None:
        _wire_command(subcommand)
    return name, subcommand, rest


def _path(context: Any) -> list[str]:  # noqa: ANN401 - a click Context
    """The command names from below the root down to ``context``'s command."""
    names: list[str] = []
    while context is not None and context.parent is not None:
        names.append(context.command.name or context.info_name or "")
        context = context.parent
    return names[::-1]
