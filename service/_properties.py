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

__all__ = ["default_properties", "every_event", "machine_arch"]

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


def every_event(
    verdict: RuntimeVerdict,
    app: str | None,
    app_version: str | None,
    is_tty: bool | None,
    extra: Mapping[str, object],
) -> dict[str, object]:
    """The properties a stitch puts on every capture: the defaults, then the host's own
    (``extra``: ``properties=`` of :meth:`IdentityStitch.open`) over them. ``is_tty``
    ``None``: whether stdout is a terminal now."""
    is_tty = stdout_is_tty() if is_tty is None else is_tty
    found = default_properties(app=app, app_version=app_version, verdict=verdict, is_tty=is_tty)
    return {**found, **extra}
