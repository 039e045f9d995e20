"""What the tests share: hand-made logs, strategies, hosts and workers run as real processes.

Nothing here is a test. Modules that spawned or forked workers import
(``workers``, ``reliability_workers``, ``storage_workers``) and the host
scripts (``reliability_host``, ``delivery_host``) import neither pytest nor
hypothesis, so a child process starts in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

#: This folder: the host scripts and workers that tests run by path.
SUPPORT = Path(__file__).resolve().parent
#: The repository's root (docs, examples, pyproject.toml).
REPO = SUPPORT.parents[1]
