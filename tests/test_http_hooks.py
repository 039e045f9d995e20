"""The HTTP hooks against real clients (httpx sync and async, requests) and a local API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from idstitch.adapters.http import httpx_async_hooks, httpx_hooks, requests_hook, user_id_from
from idstitch.adapters.sinks import RecordingSink
from idstitch.machine import State
from local_api import serve
from service_support import log_records, open_stitch

SECRET = "sentinel-token-7f3a"  # noqa: S105 - a sentinel the test looks for in files


class _Api(BaseHTTPRequestHandler):
    """/me answers with the user header for the bearer token; /fail answers 401."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        authorized = self.headers.get("Authorization") == f"Bearer {SECRET}"
        status = 200 if authorized and self.path == "/me" else 401
        body = json.dumps({"id": "user-a"} if status == 200 else {"error": "no"}).encode()
        self.send_response(status)
        if status == 200:
            self.send_header("X-User-Id", "user-a")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api() -> Iterator[str]:
    """A local API on 127.0.0.1 that names the authenticated user in X-User-Id."""
    with serve(_Api) as url:
        yield url


AUTH = {"Authorization": f"Bearer {SECRET}"}


def test_an_httpx_client_stamps_and_aliases_once(tmp_path: Path, api: str) -> None:
    """httpx (sync): the first authenticated response aliases; later ones change nothing."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    with httpx.Client(event_hooks=httpx_hooks(stitch)) as client:
        assert 401 == client.get(f"{api}/fail", headers=AUTH).status_code
        assert State.ANONYMOUS == stitch.state
        for _ in range(3):
            client.get(f"{api}/me", headers=AUTH)
    assert (State.ALIASED, "user-a", 1) == (stitch.state, stitch.distinct_id, len(sink.aliases))


def test_concurrent_async_httpx_requests_alias_once(tmp_path: Path, api: str) -> None:
    """httpx.AsyncClient: 20 concurrent requests sharing one service alias once."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)

    async def main() -> None:
        async with httpx.AsyncClient(event_hooks=httpx_async_hooks(stitch)) as client:
            await asyncio.gather(*(client.get(f"{api}/me", headers=AUTH) for _ in range(20)))

    asyncio.run(main())
    assert (State.ALIASED, 1) == (stitch.state, len(sink.aliases))


def test_concurrent_requests_sessions_and_an_httpx_client_alias_once(
    tmp_path: Path, api: str
) -> None:
    """Several clients of two libraries, in 16 threads, share one service: one alias."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    session = requests.Session()
    session.hooks["response"].append(requests_hook(stitch))
    client = httpx.Client(event_hooks=httpx_hooks(stitch))

    def call(n: int) -> int:
        if n % 2:
            return session.get(f"{api}/me", headers=AUTH, timeout=10).status_code
        return client.get(f"{api}/me", headers=AUTH).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert [200] * 32 == list(pool.map(call, range(32)))
    client.close()
    assert (State.ALIASED, 1) == (stitch.state, len(sink.aliases))
    assert 1 == sum(1 for r in log_records(tmp_path) if r.get("alias"))


def test_no_token_or_header_value_reaches_the_files(tmp_path: Path, api: str) -> None:
    """The bearer token never lands in the log or the snapshot; only the user id does."""
    stitch = open_stitch(tmp_path)
    session = requests.Session()
    session.hooks["response"].append(requests_hook(stitch))
    session.get(f"{api}/me", headers=AUTH, timeout=10)
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert SECRET.encode() not in written
    assert b"user-a" in written


def test_an_extractor_can_read_the_body(tmp_path: Path, api: str) -> None:
    """A callable extractor (here: the JSON body's id) works like a header name."""
    stitch = open_stitch(tmp_path)
    with httpx.Client(event_hooks=httpx_hooks(stitch, lambda r: r.json().get("id"))) as client:
        client.get(f"{api}/me", headers=AUTH)
    assert "user-a" == stitch.distinct_id


class _Response:
    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers


def test_an_illegal_id_in_a_response_is_ignored_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server sending "null" as the user never breaks the request: logged and ignored."""
    stitch = open_stitch(tmp_path)
    hook = requests_hook(stitch)
    hook(_Response(200, {"X-User-Id": "null"}))
    hook(_Response(200, {"X-User-Id": "null"}))
    assert State.ANONYMOUS == stitch.state
    messages = [r.getMessage() for r in caplog.records]
    assert 1 == sum("ignoring the user id in a response" in m for m in messages)


def test_only_successful_responses_are_read() -> None:
    """user_id_from reads 2xx responses only; an error page is not an authenticated answer."""
    extract = user_id_from("X-User-Id")
    got = [extract(_Response(status, {"X-User-Id": "u"})) for status in (200, 204, 301, 401, 500)]
    assert ["u", "u", None, None, None] == got
    assert extract(_Response(200, {})) is None
