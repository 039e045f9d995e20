"""The state diagram, drawn from the transition table itself, so it cannot drift."""

from __future__ import annotations

from ._table import INITIAL, TRANSITIONS, Transition

__all__ = ["edge_label", "mermaid"]


def edge_label(row: Transition) -> str:
    """How one table row reads on an edge: ``event [guard] / alias``."""
    guard = f" [{row.guard}]" if row.guard else ""
    sends = " / alias" if row.alias else ""
    return f"{row.event}{guard}{sends}"


def mermaid() -> str:
    """The machine as a mermaid ``stateDiagram-v2``: one edge per (source, target), every
    row of :data:`TRANSITIONS` listed on it."""
    edges: dict[tuple[str, str], list[str]] = {}
    for row in TRANSITIONS:
        source = "[*]" if row.source == INITIAL else str(row.source)
        edges.setdefault((source, str(row.target)), []).append(edge_label(row))
    lines = ["stateDiagram-v2"]
    for (source, target), labels in edges.items():
        lines.append(f"    {source} --> {target}: {'<br/>'.join(labels)}")
    return "\n".join(lines) + "\n"
