"""Hypothesis profiles: ``make test`` is reproducible, ``make explore`` searches afresh.

``IDSTITCH_HYPOTHESIS=ci`` (what ``make test`` sets) derandomizes every property
test: a commit passes or fails the same way on every machine, so CI reports a
change's result, not a dice roll. ``explore`` draws new examples on each run,
ten times as many (``strategies.examples``), to find what the fixed ones miss;
a failure prints the ``@reproduce_failure`` blob that pins it. With neither,
Hypothesis's own defaults apply (random, with its example database). No profile
sets a deadline: speed is measured by ``bench/``, not by tests on a shared machine.
"""

from hypothesis import settings
from strategies import PROFILE

settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("explore", max_examples=1_000, deadline=None, print_blob=True)
settings.register_profile("default", deadline=None, print_blob=True)
settings.load_profile(PROFILE)
