"""The local capture server: the paths it takes events on, and its late answers
(``delay_seconds``), as B6 and B7 use them.

Requests are posted as posthog-python posts a batch, with the standard
library's client, and by the real sender through ``run_sender``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from idstitch.adapters.capture_server import CaptureServer
from idstitch.delivery import read_status, run_sender
from idstitch.delivery._spool import new_uuid
from support.spool import spool_events


def post_batch(url: str, events: list[str], timeout: float = 10.0) -> dict[str, Any]:
    """POST a ``/batch/`` of ``events`` as posthog-python does; the decoded answer."""
    batch = [
        {"event": name, "distinct_id": "d", "uuid": new_uuid(), "properties": {}} for name in events
    ]
    request = urllib.request.Request(  # noqa: S310 - the loopback server of the test
        f"{url}/batch/",
        data=json.dumps({"api_key": "k", "batch": batch}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
        result: dict[str, Any] = json.loads(answer.read())
    return result


def post_while_held(
    server: CaptureServer, events: list[str]
) -> tuple[tuple[int, list[Any], list[str]], list[Any]]:
    """POST a ``/batch/`` of ``events`` from another thread, the server to hold its answer.
    What the server shows once it holds it (answers held, the client's answers so far, every
    event kept), and the client's answers after :meth:`CaptureServer.release` (the client
    gives up after 10 s: no answer if the release did not end the hold)."""
    answers: list[Any] = []
    client = threading.Thread(target=lambda: answers.append(post_batch(server.url, events)))
    before = server.delayed  # read before the post: its hold may begin at once
    client.start()
    assert server.wait_delayed(before + 1)
    held = (server.delayed, list(answers), [m["event"] for m in server.messages])
    server.release()
    client.join(30)
    return held, answers


def test_no_delay_by_default() -> None:
    """A server made without delay_seconds answers a batch without holding its answer."""
    with CaptureServer() as server:
        assert (0.0, 0) == (server.delay_seconds, server.delay_after)
        assert {"status": 1} == post_batch(server.url, ["a"])
        assert (0, ["a"]) == (server.delayed, [m["event"] for m in server.messages])


def test_a_delayed_answer_comes_late() -> None:
    """With delay_seconds the answer comes at least that late, and the events are taken."""
    with CaptureServer(delay_seconds=0.3) as far:
        started = time.monotonic()
        assert {"status": 1} == post_batch(far.url, ["a", "b"])
        assert time.monotonic() - started >= 0.3
        assert (1, ["a", "b"]) == (far.delayed, [m["event"] for m in far.messages])


def test_the_events_are_kept_before_the_late_answer(capsys: pytest.CaptureFixture[str]) -> None:
    """A client that gives up waiting has delivered all the same (so a resend is a duplicate)."""
    with CaptureServer(delay_seconds=30) as far:
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            post_batch(far.url, ["a"], timeout=0.2)
        assert ["a"] == [m["event"] for m in far.wait_for(1)]
        far.release()  # the late answer finds the client gone: quietly
        time.sleep(0.2)
    assert "" == capsys.readouterr().err


def test_release_ends_a_delay_at_once() -> None:
    """release() answers a request held by a 60 s delay: the client, which gives up after
    10 s (a sixth of the delay), gets its 200."""
    with CaptureServer(delay_seconds=60) as far:
        assert ((1, [], ["a"]), [{"status": 1}]) == post_while_held(far, ["a"])


def test_a_delay_can_be_set_while_it_serves() -> None:
    """delay_seconds set on a running server holds the next answer, not the one before it."""
    with CaptureServer() as server:
        assert {"status": 1} == post_batch(server.url, ["quick"])
        assert 0 == server.delayed
        server.delay_seconds = 60
        held = post_while_held(server, ["late"])
        assert ((1, [], ["quick", "late"]), [{"status": 1}]) == held


def test_the_first_batches_are_answered_before_the_delay_begins() -> None:
    """With delay_after=2 the first two batches are answered at once, the third is held."""
    with CaptureServer(delay_seconds=60, delay_after=2) as server:
        assert [{"status": 1}] * 2 == [post_batch(server.url, [name]) for name in ("a", "b")]
        assert 0 == server.delayed
        held = post_while_held(server, ["c"])
        assert ((1, [], ["a", "b", "c"]), [{"status": 1}]) == held


def test_errors_are_not_delayed() -> None:
    """Only the answers that take the events are late: a 500 is not held (held 30 s, it would
    reach no client, which gives up after 10 s)."""
    with CaptureServer("error", delay_seconds=30) as failing:
        with pytest.raises(urllib.error.HTTPError) as refused:
            post_batch(failing.url, ["a"])
        refused.value.close()  # the error holds the answer's connection
        assert (500, 0, []) == (refused.value.code, failing.delayed, failing.messages)


@pytest.mark.processes
def test_the_sender_waits_for_a_late_answer(tmp_path: Path) -> None:
    """The sender waits out a late answer, never resending: each event arrives once, in order."""
    with CaptureServer(delay_seconds=0.3) as far:
        folder = str(tmp_path / "spool")
        uuids = spool_events(folder, far.url, 3)
        started = time.monotonic()
        report = run_sender(folder)
        assert (report.result, report.delivered) == ("drained", 3)
        assert time.monotonic() - started >= 0.3
        assert uuids == [m["uuid"] for m in far.messages]
        assert 0 == read_status(folder).waiting


@pytest.mark.parametrize("path", ["/batch/", "/capture/", "/e/", "/i/v0/e/"])
def test_every_path_posthog_python_posts_events_to_is_taken(path: str) -> None:
    """Every path posthog-python posts events to (gzipped) is taken, and the server records it."""
    from posthog.request import batch_post

    message = {"event": "e", "distinct_id": "d", "uuid": new_uuid(), "properties": {}}
    with CaptureServer() as server:
        batch_post("k", server.url, gzip=True, path=path, batch=[message])
        assert [message["uuid"]] == [m["uuid"] for m in server.messages]
        assert [path] == server.paths


def test_another_path_is_refused() -> None:
    """A post to any other path is refused with 404 and no event is kept."""
    from posthog.request import APIError, batch_post

    with CaptureServer() as server:
        with pytest.raises(APIError) as refused:
            batch_post("k", server.url, path="/nowhere/", batch=[{"event": "e"}])
        assert (404, []) == (refused.value.status, server.messages)
