"""The identity-model doc shows the diagram the machine generates, not a stale copy."""

from __future__ import annotations

import re

from idstitch.machine import mermaid
from support import REPO

DOC = REPO / "docs" / "identity-model.md"


def test_the_doc_diagram_is_the_generated_one() -> None:
    """docs/identity-model.md holds exactly what mermaid() draws from the table."""
    blocks = re.findall(r"```mermaid\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert [mermaid()] == blocks
