"""``idstitch diagram --format text``: the state machine drawn for a terminal.

Generated from the machine's own transition table, as the mermaid diagram
is (:func:`idstitch.machine.mermaid`), so it cannot drift: one block per
state, one line per row of :data:`~idstitch.machine.TRANSITIONS` leaving
it, ``event [guard] --> next state`` and why, in at most 80 columns.
"""

from __future__ import annotations

from idstitch.machine import INITIAL, TRANSITIONS, State
from idstitch.machine._diagram import edge_label

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import Final

__all__ = ["text_diagram"]

#: What a reader needs to read the lines below it.
_LEGEND: Final = (
    "The identity state machine, drawn from its transition table.",
    "Each state lists what can happen in it: event [guard] --> next state, and why.",
    '"/ alias" marks the one step that sends PostHog a $create_alias (R2, R3).',
)
#: The pseudo-state of an empty log, as a heading.
_START: Final = "(start: an empty log)"


def text_diagram() -> str:
    """The machine as plain text: every transition, grouped by the state it leaves."""
    sources = [INITIAL, *(str(state) for state in State)]
    width = max(len(edge_label(row)) for row in TRANSITIONS)
    target = max(len(str(row.target)) for row in TRANSITIONS)
    lines = [*_LEGEND]
    for source in sources:
        rows = [row for row in TRANSITIONS if row.source == source]
        lines += ["", _START if source == INITIAL else source]
        lines += [
            f"  {edge_label(row):<{width}} --> {row.target!s:<{target}}  {row.why}".rstrip()
            for row in rows
        ]
    return "\n".join(lines) + "\n"
