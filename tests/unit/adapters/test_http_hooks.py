"""The HTTP hooks against real clients (httpx sync and async, requests) and a local API."""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest
import requests
from idstitch.adapters.http import httpx_async_hooks, httpx_hooks, requests_hook, user_id_from
from idstitch.adapters.sinks import PrintSink, RecordingSink
from idstitch.machine import IdentityStitch, State
from support.local_api import serve
from support.service import log_records, open_stitch

if TYPE_CHECKING:
    from idstitch.adapters.http import Extractor

T = TypeVar("T")
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
    """A server sending "null" as the user never breaks the request: logged once and ignored."""
    stitch = open_stitch(tmp_path)
    hook = requests_hook(stitch)
    hook(_Response(200, {"X-User-Id": "null"}))
    hook(_Response(200, {"X-User-Id": "null"}))
    assert State.ANONYMOUS == stitch.state
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 == sum("response refused: " in m for m in messages)


def test_every_status_but_401_and_407_is_read() -> None:
    """user_id_from reads any response but a 401 (not authenticated) or a 407 (a proxy's)."""
    extract = user_id_from("X-User-Id")
    statuses = (200, 204, 301, 403, 404, 422, 500, 503, 401, 407)
    got = [extract(_Response(status, {"X-User-Id": "u"})) for status in statuses]
    assert ["u"] * 8 + [None, None] == got
    assert extract(_Response(500, {})) is None


# ------------------------------------------- bodies the hook must not read, repeated headers

ME = {"id": "user-b"}
#: Endless streams by kind: (content type, the line repeated); "json" is a watch-style stream.
ENDLESS = {
    "sse": ("text/event-stream", b"data: log line\n\n"),
    "json": ("application/json", json.dumps(ME).encode() + b"\n"),
}


class _Bodies(BaseHTTPRequestHandler):
    """Bodies of every shape, over HTTP/1.1 so that chunked encoding is real.

    /me?gzip=&chunked=  the JSON user, gzip-encoded or not, chunked (no Content-Length) or not
    /big?chunked=       the JSON user padded to 2 MiB
    /follow/<kind>      a chunked stream that ends only when the test ends (``stop``)
    /cut                a body that promises 1000 bytes and sends 10
    /users/<case>?h=    header ``h`` twice the same (same), joined (joined), or not (differ)
    """

    protocol_version = "HTTP/1.1"
    stop = threading.Event()  # replaced per test by the fixture

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = dict(part.split("=") for part in query.split("&") if part)
        try:
            if path.startswith("/follow/"):
                self._endless(*ENDLESS[path.removeprefix("/follow/")])
            elif path == "/cut":
                self._head(200, {"Content-Length": "1000"})
                self.wfile.write(b'{"id": "us')
                self.close_connection = True
            elif path.startswith("/users/"):
                self._users(path.removeprefix("/users/"), params["h"])
            else:
                body = dict(ME, pad="x" * (2 << 20)) if path == "/big" else ME
                self._json(json.dumps(body).encode(), params)
        except OSError:  # the client went away mid-stream: that is the host's choice
            self.close_connection = True

    def _head(self, status: int, headers: dict[str, str] | list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers.items() if isinstance(headers, dict) else headers:
            self.send_header(name, value)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _json(self, body: bytes, params: dict[str, str]) -> None:
        headers = {"Content-Type": "application/json"}
        if params.get("gzip") == "1":
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if params.get("chunked") == "1":
            self._head(200, {**headers, "Transfer-Encoding": "chunked"})
            for start in range(0, len(body), 7000):
                self._chunk(body[start : start + 7000])
            self._chunk(b"")
        else:
            self._head(200, {**headers, "Content-Length": str(len(body))})
            self.wfile.write(body)

    def _endless(self, content_type: str, line: bytes) -> None:
        self._head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked"})
        self._chunk(line)
        while not self.stop.wait(0.05):
            self._chunk(line)
        self._chunk(b"")

    def _users(self, case: str, header: str) -> None:
        values = {
            "same": ["user-1", "user-1"],
            "joined": ["user-1, user-1"],
            "differ": ["user-1", "user-2"],
            "joined-differ": ["user-1, user-2"],
        }[case]
        self._head(200, [*((header, value) for value in values), ("Content-Length", "0")])


@pytest.fixture
def bodies() -> Iterator[str]:
    """A local API serving _Bodies; its endless streams end when the test does."""
    stop = threading.Event()
    with serve(type("Bodies", (_Bodies,), {"stop": stop})) as url:
        try:
            yield url
        finally:
            stop.set()


CLIENTS = ["httpx", "httpx-async", "requests"]


def _json_id(response: Any) -> str | None:
    """The documented callable: the user id is the JSON body's "id"."""
    user_id = response.json()["id"]
    assert isinstance(user_id, str)
    return user_id


def _fetch(client: str, url: str, stitch: IdentityStitch, source: str | Extractor) -> None:
    """One ordinary GET of url (the client reads the body) with idstitch's hook installed."""
    if client == "httpx":
        with httpx.Client(event_hooks=httpx_hooks(stitch, source)) as sync_client:
            sync_client.get(url).raise_for_status()
    elif client == "httpx-async":

        async def main() -> None:
            hooks = httpx_async_hooks(stitch, source)
            async with httpx.AsyncClient(event_hooks=hooks) as async_client:
                (await async_client.get(url)).raise_for_status()

        asyncio.run(main())
    else:
        with requests.Session() as session:
            session.hooks["response"].append(requests_hook(stitch, source))
            session.get(url, timeout=10).raise_for_status()


def _open_stream(
    client: str, url: str, stitch: IdentityStitch, source: str | Extractor, lines: int
) -> tuple[int, list[str]]:
    """Open url as a stream with the hook installed; the status and the first ``lines`` lines."""
    if client == "httpx":
        with (
            httpx.Client(event_hooks=httpx_hooks(stitch, source)) as sync_client,
            sync_client.stream("GET", url) as response,
        ):
            return response.status_code, list(itertools.islice(response.iter_lines(), lines))
    if client == "httpx-async":

        async def main() -> tuple[int, list[str]]:
            hooks = httpx_async_hooks(stitch, source)
            async with (
                httpx.AsyncClient(event_hooks=hooks) as async_client,
                async_client.stream("GET", url) as response,
            ):
                stream = response.aiter_lines()
                return response.status_code, [await anext(stream) for _ in range(lines)]

        return asyncio.run(main())
    with requests.Session() as session:
        session.hooks["response"].append(requests_hook(stitch, source))
        with session.get(url, stream=True, timeout=10) as streamed:
            first = itertools.islice(streamed.iter_lines(decode_unicode=True), lines)
            return streamed.status_code, [str(line) for line in first]


def _within(seconds: float, call: Callable[[], T]) -> T:
    """call() in a daemon thread: a call still blocked after ``seconds`` fails the test."""
    outcome: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if errors:
        raise errors[0]
    return outcome[0]


@pytest.mark.parametrize("kind", list(ENDLESS))
@pytest.mark.parametrize("client", CLIENTS)
def test_a_stream_that_never_ends_reaches_the_host_line_by_line(
    tmp_path: Path, bodies: str, client: str, kind: str
) -> None:
    """With a body-reading callable installed, the host reads an endless stream as it comes."""
    stitch = open_stitch(tmp_path)
    url = f"{bodies}/follow/{kind}"
    got = _within(20, lambda: _open_stream(client, url, stitch, _json_id, lines=1))
    first_line = ENDLESS[kind][1].decode().splitlines()[0]
    assert ((200, [first_line]), State.ANONYMOUS) == (got, stitch.state)


@pytest.mark.parametrize("client", ["httpx", "httpx-async"])
def test_a_body_cut_short_does_not_break_a_stream_the_host_opens(
    tmp_path: Path, bodies: str, client: str
) -> None:
    """The hook reads no body, so a broken one is the host's to meet, when it reads, if it reads."""
    stitch = open_stitch(tmp_path)
    got = _within(20, lambda: _open_stream(client, f"{bodies}/cut", stitch, _json_id, lines=0))
    assert ((200, []), State.ANONYMOUS) == (got, stitch.state)


@pytest.mark.parametrize(("gzipped", "chunked"), list(itertools.product("01", "01")))
@pytest.mark.parametrize("client", CLIENTS)
def test_a_callable_reads_a_json_body(
    tmp_path: Path, bodies: str, client: str, gzipped: str, chunked: str
) -> None:
    """The documented callable on a JSON body: sized or chunked, plain or gzip, every client."""
    stitch = open_stitch(tmp_path)
    _fetch(client, f"{bodies}/me?gzip={gzipped}&chunked={chunked}", stitch, _json_id)
    assert (State.ALIASED, "user-b") == (stitch.state, stitch.distinct_id)


@pytest.mark.parametrize("client", ["httpx", "httpx-async"])
def test_a_streamed_body_names_the_user_once_the_host_has_read_it(
    tmp_path: Path, bodies: str, client: str
) -> None:
    """With client.stream the body is read by the host, not the hook: the id comes after."""
    stitch = open_stitch(tmp_path)
    url = f"{bodies}/me?gzip=1&chunked=1"
    seen: list[State] = []
    if client == "httpx":
        with (
            httpx.Client(event_hooks=httpx_hooks(stitch, _json_id)) as sync_client,
            sync_client.stream("GET", url) as response,
        ):
            seen.append(stitch.state)
            response.read()
            seen.append(stitch.state)
    else:

        async def main() -> None:
            hooks = httpx_async_hooks(stitch, _json_id)
            async with (
                httpx.AsyncClient(event_hooks=hooks) as async_client,
                async_client.stream("GET", url) as response,
            ):
                seen.append(stitch.state)
                await response.aread()
                seen.append(stitch.state)

        asyncio.run(main())
    assert [State.ANONYMOUS, State.ALIASED] == seen


@pytest.mark.parametrize("chunked", "01")
def test_a_body_over_a_mebibyte_is_not_kept_for_the_callable(
    tmp_path: Path, bodies: str, chunked: str
) -> None:
    """The hook keeps at most 1 MiB of a body for the callable; the host gets all of it."""
    stitch = open_stitch(tmp_path)
    with httpx.Client(event_hooks=httpx_hooks(stitch, _json_id)) as client:
        response = client.get(f"{bodies}/big?chunked={chunked}")
    assert ("user-b", State.ANONYMOUS) == (response.json()["id"], stitch.state)


@pytest.mark.parametrize("case", ["same", "joined"])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_header_repeating_one_id_names_that_user(
    tmp_path: Path, bodies: str, client: str, case: str
) -> None:
    """X-User-Id: user-1 twice (or one line "user-1, user-1") stamps and aliases user-1."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    _fetch(client, f"{bodies}/users/{case}?h=X-User-Id", stitch, "X-User-Id")
    aliased = [alias.user_id for alias in sink.aliases]
    assert (State.ALIASED, "user-1", ["user-1"]) == (stitch.state, stitch.distinct_id, aliased)


@pytest.mark.parametrize("case", ["differ", "joined-differ"])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_header_repeated_with_different_ids_names_no_one(
    tmp_path: Path, bodies: str, client: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """user-1 and user-2 in one response, on two lines or joined on one: nothing stamped."""
    caplog.set_level(logging.DEBUG, logger="idstitch")
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    header = f"X-User-Id-{client}-{case}"  # one header per case: each logs its own first time
    for _ in range(2):
        _fetch(client, f"{bodies}/users/{case}?h={header}", stitch, header)
    logged = [r.levelname for r in caplog.records if f"{header} lines differ" in r.getMessage()]
    assert (State.ANONYMOUS, [], ["DEBUG"]) == (stitch.state, sink.aliases, logged)


# ------------------------------------------------- error statuses, and sources never seen


class _Statuses(BaseHTTPRequestHandler):
    """/status/<code>?id=<0|1>&page=<json|html>: that status, the user in X-User-Id and in the
    JSON body when id=1; a redirect's Location is /status/200 without the id."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = dict(part.split("=") for part in query.split("&") if part)
        status = int(path.removeprefix("/status/"))
        named = params.get("id") == "1"
        if params.get("page") == "html":
            body = b"<html><body>502 Bad Gateway</body></html>"
        else:
            body = json.dumps({"id": "user-s"} if named else {"error": "x"}).encode()
        self.send_response(status)
        if named:
            self.send_header("X-User-Id", "user-s")
        if 300 <= status < 400:
            self.send_header("Location", "/status/200")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def statuses() -> Iterator[str]:
    """A local API answering any status, with or without the user id."""
    with serve(_Statuses) as url:
        yield url


def _get(client: str, url: str, stitch: IdentityStitch, source: str | Extractor) -> int:
    """One GET of url with the hook installed, whatever the status; the status the host got."""
    if client == "httpx":
        with httpx.Client(event_hooks=httpx_hooks(stitch, source)) as sync_client:
            return sync_client.get(url).status_code
    if client == "httpx-async":

        async def main() -> int:
            hooks = httpx_async_hooks(stitch, source)
            async with httpx.AsyncClient(event_hooks=hooks) as async_client:
                return (await async_client.get(url)).status_code

        return asyncio.run(main())
    with requests.Session() as session:
        session.hooks["response"].append(requests_hook(stitch, source))
        return session.get(url, timeout=10, allow_redirects=False).status_code


#: status -> whether a response of that status carrying the id names the user.
NAMES = {403: True, 404: True, 422: True, 500: True, 503: True, 302: True, 401: False, 407: False}


@pytest.mark.parametrize("source", ["X-User-Id", "callable"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("status", list(NAMES))
def test_an_error_status_names_the_user_it_carries(
    tmp_path: Path, statuses: str, client: str, status: int, source: str
) -> None:
    """A 422 (a failed deploy), a 500 or a redirect names the user when it carries the id, by
    header or body; without the id it names no one; a 401 or a 407 never names anyone."""
    stitch = open_stitch(tmp_path)
    read: str | Extractor = _json_id if source == "callable" else source
    seen = []
    for named in "01":
        got = _get(client, f"{statuses}/status/{status}?id={named}", stitch, read)
        seen.append((got, stitch.state))
    after = State.ALIASED if NAMES[status] else State.ANONYMOUS
    assert [(status, State.ANONYMOUS), (status, after)] == seen


@pytest.mark.parametrize("client", CLIENTS)
def test_a_callable_failing_on_an_error_page_is_no_warning(
    tmp_path: Path, statuses: str, client: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The JSON callable on a proxy's HTML 502 raises inside the hook: a debug message at most,
    never a warning; the host gets its 502."""
    caplog.set_level(logging.DEBUG, logger="idstitch")
    stitch = open_stitch(tmp_path)
    got = _get(client, f"{statuses}/status/502?page=html", stitch, _json_id)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert (502, State.ANONYMOUS, []) == (got, stitch.state, warnings)


@pytest.mark.parametrize("client", CLIENTS)
def test_the_dry_run_names_a_header_never_seen(tmp_path: Path, statuses: str, client: str) -> None:
    """A misspelled header read over 3 responses: the dry run's flush says so in one line,
    once; a 401 is not counted."""
    header = f"X-Usr-Id-{client}"  # one per case: each source is reported once per process
    stitch = open_stitch(tmp_path)
    PrintSink(io.StringIO()).flush(1.0)  # what earlier tests left to report
    for status in (200, 422, 401, 500):
        _get(client, f"{statuses}/status/{status}?id=1", stitch, header)
    printed = io.StringIO()
    PrintSink(printed).flush(1.0)
    PrintSink(printed).flush(1.0)
    expected = (
        f"idstitch: the HTTP hook read 3 responses and none carried the header {header}: "
        "is that the name your API sends the user id in?\n"
    )
    assert (expected, State.ANONYMOUS) == (printed.getvalue(), stitch.state)


def test_the_dry_run_names_a_callable_that_never_returned_an_id(
    tmp_path: Path, statuses: str
) -> None:
    """A callable reading the wrong field over 2 responses: one line naming it; a header that
    did name the user is not reported."""

    def wrong_field(response: Any) -> str | None:
        value = response.json().get("user")
        return None if value is None else str(value)

    stitch = open_stitch(tmp_path)
    PrintSink(io.StringIO()).flush(1.0)  # what earlier tests left to report
    for _ in range(2):
        _get("httpx", f"{statuses}/status/200?id=1", stitch, wrong_field)
    _get("httpx", f"{statuses}/status/200?id=1", stitch, "X-User-Id")
    printed = io.StringIO()
    PrintSink(printed).flush(1.0)
    name = wrong_field.__qualname__
    expected = (
        f"idstitch: the user id callable {name} returned no user id for any of the 2 "
        "responses the HTTP hook read\n"
    )
    assert (expected, State.ALIASED) == (printed.getvalue(), stitch.state)
