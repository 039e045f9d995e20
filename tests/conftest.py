"""Hypothesis profiles: ``make test`` is reproducible, ``make explore`` searches afresh.

``IDSTITCH_HYPOTHESIS=ci`` (what ``make test`` sets) derandomizes every property
test: a commit passes or fails the same way on every machine, so CI reports a
change's result, not a dice roll. ``explore`` draws new examples on each run,
ten times as many (``strategies.examples``), to find what the fixed ones miss;
a failure prints the ``@reproduce_failure`` blob that pins it. ``check`` (``make
check``, the quick loop) is derandomized too, with a fifth of the examples. With none,
Hypothesis's own defaults apply (random, with its example database). No profile
sets a deadline: speed is measured by ``bench/``, not by tests on a shared machine.

Detached senders that hosts in the tests started (``python -m idstitch.delivery``)
are waited for when the session ends, so that none is still running, or saving
its coverage data, when ``make test`` combines it.
"""

import os
import signal
import time
from collections.abc import Iterator

import pytest
from hypothesis import settings
from support.strategies import PROFILE

settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("explore", max_examples=1_000, deadline=None, print_blob=True)
settings.register_profile(
    "check", derandomize=True, max_examples=20, deadline=None, database=None, print_blob=True
)
settings.register_profile("default", deadline=None, print_blob=True)
settings.load_profile(PROFILE)


def _senders() -> list[int]:
    """The pids of this machine's running ``python -m idstitch.delivery`` processes."""
    found = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
            with open(f"/proc/{name}/stat") as stat:
                zombie = stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if b"idstitch.delivery" in words and not zombie:
            found.append(int(name))
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_sender_outlives_the_session() -> Iterator[None]:
    before = set(_senders())
    yield
    deadline = time.monotonic() + 40  # a sender's run lasts 30 s at most
    while (left := set(_senders()) - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
