"""The properties every event carries: what the CLI is, where it runs, and why so.

Built once per process, on the first capture (a start that captures nothing
pays nothing), from what :meth:`IdentityStitch.open` already knows: the
host's name and version, the runtime verdict (:mod:`._runtime`, so the
runtime is decided in one place), and whether stdout is a terminal. The only
new fact it reads is the machine's architecture (``os.uname()``, not the
``platform`` module: start-up cost).

Nothing personal goes in: no path, host name, user name, argument,
environment value or error message. Each value is a name from a fixed
vocabulary (the runtime, its reason, a provider's name from a table, the
architecture), a version the host or idstitch states, or a flag.

The PostHog client adds its own when it builds the message (``$os``,
``$os_version``, ``$python_version``, ``$python_runtime``, ``$lib``,
``$lib_version``); they are not repeated here.
"""

from __future__ import annotations

import os

from ._runtime import stdout_is_tty

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._runtime import RuntimeVerdict

__all__ = ["EventProperties", "default_properties", "machine_arch"]

#: The architectures Windows names in ``PROCESSOR_ARCHITECTURE`` (it has no ``os.uname``);
#: any other value of that variable is not sent.
_WINDOWS_ARCHES = frozenset({"AMD64", "ARM64", "x86", "IA64", "EM64T"})


def machine_arch() -> str | None:
    """The machine's architecture as ``platform.machine()`` names it (``x86_64``, ``arm64``,
    ``aarch64``, ``AMD64``), without importing ``platform``; ``None`` if unknown."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        machine: str = uname().machine
        return machine or None
    for name in ("PROCESSOR_ARCHITEW6432", "PROCESSOR_ARCHITECTURE"):  # a 32-bit Python on 64
        value = os.environ.get(name, "")
        if value in _WINDOWS_ARCHES:
            return value
    return None


def default_properties(
    *, app: str | None, app_version: str | None, verdict: RuntimeVerdict, is_tty: bool
) -> dict[str, object]:
    """The default properties of every event (docs/integration.md lists them).

    ``cli_name`` and ``cli_version`` (absent when ``None``), ``idstitch_version``,
    ``arch``, ``runtime``, ``runtime_reason``, ``runtime_provider`` (absent when the
    reason names none) and ``is_tty``.
    """
    from idstitch import __version__  # the package root, loaded before any of its modules

    found: dict[str, object] = {
        "cli_name": app,
        "cli_version": app_version,
        "idstitch_version": __version__,
        "arch": machine_arch(),
        "runtime": verdict.runtime.value,
        "runtime_reason": verdict.reason,
        "runtime_provider": verdict.provider,
        "is_tty": is_tty,
    }
    return {name: value for name, value in found.items() if value is not None}


class EventProperties:
    """The properties a stitch puts on every capture: the defaults, then the host's own
    (``properties=`` of :meth:`IdentityStitch.open`) over them. Computed on first use."""

    __slots__ = ("_app", "_app_version", "_every", "_extra", "_is_tty", "_verdict")

    def __init__(
        self,
        *,
        verdict: RuntimeVerdict,
        app: str | None = None,
        app_version: str | None = None,
        is_tty: bool | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        self._verdict = verdict
        self._app = app
        self._app_version = app_version
        self._is_tty = is_tty
        self._extra = dict(extra or {})
        self._every: dict[str, object] | None = None

    def every_event(self) -> dict[str, object]:
        """The defaults with the host's properties over them (the same dict each time:
        callers copy it before adding to it)."""
        if self._every is None:
            is_tty = stdout_is_tty() if self._is_tty is None else self._is_tty
            defaults = default_properties(
                app=self._app, app_version=self._app_version, verdict=self._verdict, is_tty=is_tty
            )
            self._every = {**defaults, **self._extra}
        return self._every
