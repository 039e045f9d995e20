"""idstitch: analytics identity for command-line tools. Stamp everywhere, alias once, audit all.

The front door: everything a host CLI needs to embed idstitch, under one name::

    import idstitch

    stitch = idstitch.open(app="mycli", sink=idstitch.SpoolSink("phc_project_key"))
    with stitch.command("deploy"):
        ...

``idstitch.open`` is :meth:`IdentityStitch.open`. The longer paths
(``idstitch.machine.IdentityStitch``, ``idstitch.adapters.sinks.SpoolSink``, ...)
stay valid; these are the same objects.

Importing ``idstitch`` costs nothing: every subpackage import runs this file
first, so each name below is loaded on first access (PEP 562), and a CLI that
never touches the sinks never imports them. The subpackages are the floors of
the code (``events``, ``store``, ``machine``, ``service``, ``delivery``,
``adapters``, ``audit``); see ``docs/adr/0005-front-door.md``.
"""

from __future__ import annotations

from idstitch.events._lazy import lazy_exports

# The one place the version is written: pyproject.toml reads it from here
# (setuptools' ``attr:``), and ``idstitch --version`` prints it without
# importing ``importlib.metadata``.
__version__ = "0.1.0"

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from idstitch.adapters.cli import instrument
    from idstitch.adapters.http import (
        httpx_async_hooks,
        httpx_hooks,
        requests_hook,
        user_id_from,
    )
    from idstitch.adapters.runtime import Runtime, detect_runtime
    from idstitch.adapters.sinks import (
        PostHogSink,
        PrintSink,
        RecordingSink,
        SpoolSink,
    )
    from idstitch.adapters.telemetry import click_telemetry, typer_telemetry
    from idstitch.events._errors import (
        IdentityError,
        IllegalUserIdError,
        LogDamagedError,
        NewerFormatError,
        TransitionError,
    )
    from idstitch.machine._table import State
    from idstitch.service._command import Command
    from idstitch.service._consent import TelemetryStatus
    from idstitch.service._protocol import Sink
    from idstitch.service._sinks import NullSink
    from idstitch.service._stitch import IdentityStitch

    open = IdentityStitch.open  # the front door's verb: `idstitch.open(...)`

__all__ = [
    "Command",
    "IdentityError",
    "IdentityStitch",
    "IllegalUserIdError",
    "LogDamagedError",
    "NewerFormatError",
    "NullSink",
    "PostHogSink",
    "PrintSink",
    "RecordingSink",
    "Runtime",
    "Sink",
    "SpoolSink",
    "State",
    "TelemetryStatus",
    "TransitionError",
    "__version__",
    "click_telemetry",
    "detect_runtime",
    "httpx_async_hooks",
    "httpx_hooks",
    "instrument",
    "open",
    "requests_hook",
    "typer_telemetry",
    "user_id_from",
]

_load = lazy_exports(
    __name__,
    {
        ".adapters.cli": ("instrument",),
        ".adapters.http": ("httpx_async_hooks", "httpx_hooks", "requests_hook", "user_id_from"),
        ".adapters.runtime": ("Runtime", "detect_runtime"),
        ".adapters.telemetry": ("click_telemetry", "typer_telemetry"),
        ".adapters.sinks": ("PostHogSink", "PrintSink", "RecordingSink", "SpoolSink"),
        ".events._errors": (
            "IdentityError",
            "IllegalUserIdError",
            "LogDamagedError",
            "NewerFormatError",
            "TransitionError",
        ),
        ".machine._table": ("State",),
        ".service._command": ("Command",),
        ".service._consent": ("TelemetryStatus",),
        ".service._protocol": ("Sink",),
        ".service._sinks": ("NullSink",),
        ".service._stitch": ("IdentityStitch",),
    },
)


def __getattr__(name: str) -> object:
    if name == "open":
        from idstitch.service._stitch import IdentityStitch

        globals()["open"] = IdentityStitch.open
        return IdentityStitch.open
    return _load(name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
