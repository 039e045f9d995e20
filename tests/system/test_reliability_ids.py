"""Bad user ids (R13) against a live service: refused exactly when the rules say, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from idstitch.adapters.http import requests_hook
from idstitch.adapters.sinks import RecordingSink
from idstitch.events import user_id_problem
from idstitch.machine import IdentityStitch, State
from idstitch.store import FileLog
from support.reliability import count
from support.strategies import examples, illegal_user_ids, legal_user_ids, spec_says_illegal

EXAMPLES = count("id_examples", 300)

#: Anything a host might pass: the rule's illegal ids, legal ones, any text at all
#: (whitespace, control characters, lone surrogates), very long text, and non-strings.
any_ids = st.one_of(
    illegal_user_ids(),
    legal_user_ids(),
    st.text(),
    st.text(st.characters(codec=None), min_size=1, max_size=40),
    st.text(st.sampled_from(" \t\r\n\x00\x1f\x7f\x85\u00a0\u2028\ufeff"), max_size=6),
    st.text(min_size=150, max_size=2000),
    st.builds(
        lambda word, pad: pad + word + pad,
        st.sampled_from(["null", "None", "0"]),
        st.text(" \t", max_size=2),
    ),
    st.none(),
    st.integers(),
    st.binary(max_size=20),
)


class _Response:
    def __init__(self, value: object) -> None:
        self.status_code = 200
        self.headers = {"X-User-Id": value}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[IdentityStitch, RecordingSink, Path]:
    """One persistent service on a real state dir, shared by every example."""
    state_dir = tmp_path_factory.mktemp("ids") / "state"
    sink = RecordingSink()
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=sink, env={})
    return stitch, sink, state_dir


def _snapshot(stitch: IdentityStitch, sink: RecordingSink, state_dir: Path) -> tuple[Any, ...]:
    files = tuple((state_dir / name).read_bytes() for name in ("identity.jsonl", "telemetry.json"))
    return (stitch.identity, len(sink.aliases), len(sink.captures), files)


@settings(
    max_examples=examples(EXAMPLES),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(user_id=any_ids, how=st.sampled_from(["response", "login", "http-hook"]))
def test_ids_are_refused_or_accepted_as_the_rules_say(
    live: tuple[IdentityStitch, RecordingSink, Path],
    user_id: Any,
    how: str,
) -> None:
    """300 hypothesis examples through observe_authenticated_response, login or the HTTP hook.

    An integer id is taken as its decimal text. Refused (the service returns
    False, the hook ignores it) exactly when user_id_problem names a problem,
    which it must for every id the rule's word list names; a refusal changes
    no byte on disk, no state and sends nothing. An accepted id (True) becomes
    the distinct id. Any exception fails the test: ids come from the network (R13).
    """
    stitch, sink, state_dir = live
    # The service takes an integer id (not a bool) as its decimal text, as PostHog's client does.
    as_text = str(user_id) if type(user_id) is int else user_id
    problem = user_id_problem(as_text)
    if isinstance(as_text, str) and spec_says_illegal(as_text):
        assert problem is not None
    before = _snapshot(stitch, sink, state_dir)
    if how == "http-hook":
        requests_hook(stitch)(_Response(user_id))
        # A header line joined by a proxy ("u, u") holds each part: one id, or several (no one).
        parts = set(as_text.split(", ")) if isinstance(as_text, str) else {as_text}
        if len(parts) == 1:
            as_text = next(iter(parts))
            problem = user_id_problem(as_text)
        refused = problem is not None or not as_text or len(parts) > 1
    else:
        call = stitch.observe_authenticated_response if how == "response" else stitch.login
        taken = call(user_id)
        assert (problem is None) is taken
        refused = not taken
    if refused:
        assert before == _snapshot(stitch, sink, state_dir)
    else:
        assert (as_text, True) == (stitch.distinct_id, stitch.persisting)
        assert stitch.state in (State.STAMPED, State.ALIASED)
    if stitch.identity.seq % 7 == 0:
        stitch.logout()  # so that first-login aliases keep happening too


def test_the_log_written_by_those_examples_holds_only_legal_ids(
    live: tuple[IdentityStitch, RecordingSink, Path],
) -> None:
    """Afterwards the log reads strictly (L7: every user id legal), one alias per device.

    A few fixed ids go first, legal and not, so that the check has users and
    aliases to look at even when this test runs on its own.
    """
    stitch, sink, state_dir = live
    taken = []
    for user_id in ("user-fixed-1", "null", "user-fixed-2", '""', "user-fixed-2"):
        taken.append(stitch.login(user_id))
        stitch.logout()
    assert [True, False, True, False, True] == taken
    records = list(FileLog(state_dir / "identity.jsonl").records(strict=True))
    users = [r["user_id"] for r in records if "user_id" in r and r["user_id"] is not None]
    assert {"user-fixed-1", "user-fixed-2"} <= set(users)
    assert [] == [u for u in users if user_id_problem(u) is not None]
    aliased = [r["device_id"] for r in records if r.get("alias")]
    assert len(aliased) >= 2
    assert (len(aliased), len(set(aliased))) == (len(sink.aliases), len(aliased))
