"""The identity machine: states, transitions and replay. Pure: no files, no clock.

``replay`` is what an audit runs. The transition table (:data:`TRANSITIONS`)
is the single place any state change is declared, and :func:`step` beside
it the single place a record's guard and its effect on the identity are
worked out: :func:`fold` is that step in a loop. ``IdentityStitch``, the
service a host CLI embeds, lives a floor above (:mod:`idstitch.service`)
and is re-exported here lazily (PEP 562), so importing this package opens
no file and loads nothing above it.
"""

from __future__ import annotations

from idstitch.events._errors import (
    IdentityError,
    IllegalUserIdError,
    LogDamagedError,
    NewerFormatError,
    TransitionError,
)

from ._fold import ReplayResult, fold, replay
from ._table import (
    EVENTS,
    INITIAL,
    TRANSITIONS,
    USER_EVENTS,
    Identity,
    State,
    Transition,
    guard_of,
    step,
)

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from idstitch.service._consent import TelemetryStatus
    from idstitch.service._stitch import IdentityStitch

    from ._diagram import mermaid

__all__ = [
    "EVENTS",
    "INITIAL",
    "TRANSITIONS",
    "USER_EVENTS",
    "Identity",
    "IdentityError",
    "IdentityStitch",
    "IllegalUserIdError",
    "LogDamagedError",
    "NewerFormatError",
    "ReplayResult",
    "State",
    "TelemetryStatus",
    "Transition",
    "TransitionError",
    "fold",
    "guard_of",
    "mermaid",
    "replay",
    "step",
]


def __getattr__(name: str) -> object:
    if name == "IdentityStitch":  # the contract's path; the class lives in the service
        from idstitch.service._stitch import IdentityStitch

        return IdentityStitch
    if name == "TelemetryStatus":  # what IdentityStitch.telemetry_status() returns
        from idstitch.service._consent import TelemetryStatus

        return TelemetryStatus
    if name == "mermaid":  # the diagram, drawn on demand: no host's start loads it
        from ._diagram import mermaid

        return mermaid
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
