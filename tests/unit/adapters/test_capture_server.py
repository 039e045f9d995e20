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


def test_no_delay_by_default() -> None:
    with CaptureServer() as server:
        assert server.delay_seconds == 0.0
        started = time.monotonic()
        assert {"status": 1} == post_batch(server.url, ["a"])
        assert time.monotonic() - started < 0.25


def test_a_delayed_answer_comes_late() -> None:
    with CaptureServer(delay_seconds=0.3) as far:
        started = time.monotonic()
        assert {"status": 1} == post_batch(far.url, ["a", "b"])
        assert time.monotonic() - started >= 0.3
        assert ["a", "b"] == [m["event"] for m in far.messages]


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
    with CaptureServer(delay_seconds=60) as far:
        answers: list[dict[str, Any]] = []
        client = threading.Thread(target=lambda: answers.append(post_batch(far.url, ["a"])))
        started = time.monotonic()
        client.start()
        assert 1 == len(far.wait_for(1))
        far.release()
        client.join(10)
        assert [{"status": 1}] == answers
        assert time.monotonic() - started < 10


def test_a_delay_can_be_set_while_it_serves() -> None:
    with CaptureServer() as server:
        post_batch(server.url, ["quick"])
        server.delay_seconds = 0.3
        started = time.monotonic()
        post_batch(server.url, ["late"])
        assert time.monotonic() - started >= 0.3


def test_errors_are_not_delayed() -> None:
    """Only the answers that take the events are late: a 500 comes at once."""
    with CaptureServer("error", delay_seconds=30) as failing:
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as refused:
            post_batch(failing.url, ["a"])
        refused.value.close()  # the error holds the answer's connection
        assert 500 == refused.value.code
        assert time.monotonic() - started < 5
        assert [] == failing.messages


@pytest.mark.processes
def test_the_sender_waits_for_a_late_answer(tmp_path: Path) -> None:
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
    from posthog.request import batch_post

    message = {"event": "e", "distinct_id": "d", "uuid": new_uuid(), "properties": {}}
    with CaptureServer() as server:
        batch_post("k", server.url, gzip=True, path=path, batch=[message])
        assert [message["uuid"]] == [m["uuid"] for m in server.messages]
        assert [path] == server.paths


def test_another_path_is_refused() -> None:
    from posthog.request import APIError, batch_post

    with CaptureServer() as server:
        with pytest.raises(APIError) as refused:
            batch_post("k", server.url, path="/nowhere/", batch=[{"event": "e"}])
        assert (404, []) == (refused.value.status, server.messages)
