"""The identity machine: states, transitions, replay, and the service that drives them.

``IdentityStitch`` is what a host CLI embeds; ``replay`` is what an audit
runs. The transition table (:data:`TRANSITIONS`) is the single place any
state change is declared.
"""

from __future__ import annotations

from idstitch.events._errors import (
    IdentityError,
    IllegalUserIdError,
    LogDamagedError,
    NewerFormatError,
    TransitionError,
)

from ._diagram import mermaid
from ._fold import Identity, ReplayResult, fold, replay
from ._service import IdentityStitch
from ._table import EVENTS, INITIAL, TRANSITIONS, State, Transition

__all__ = [
    "EVENTS",
    "INITIAL",
    "TRANSITIONS",
    "Identity",
    "IdentityError",
    "IdentityStitch",
    "IllegalUserIdError",
    "LogDamagedError",
    "NewerFormatError",
    "ReplayResult",
    "State",
    "Transition",
    "TransitionError",
    "fold",
    "mermaid",
    "replay",
]
