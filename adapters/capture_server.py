"""A local stand-in for PostHog's capture endpoint, for tests and the demo.

It listens on 127.0.0.1 (an ephemeral port, or the one asked for), accepts
``POST /batch/`` and the other paths posthog-python can post events to
(``/capture/``, ``/e/``, ``/i/v0/e/``), gzip or not, and keeps every message
it receives, so a test can point the real ``posthog`` client at it and
assert on what arrived on the wire. It can also misbehave on purpose: answer
500 or any other status (with a ``Retry-After``), hold requests without
answering, refuse a batch holding a "poison" event with 400, or answer
late, as a PostHog far away would. No network beyond the loopback
interface is ever used.
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

__all__ = ["CaptureServer"]

Mode = Literal["ok", "error", "hang", "status"]

#: The paths events are posted to (posthog-python's batch endpoint and the others it can use).
EVENT_PATHS = ("/batch", "/capture", "/e", "/i/v0/e")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ANN401 - stdlib signature
        """Keep the test output quiet."""

    def do_POST(self) -> None:
        owner = self.server.owner
        owner._note_request(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:
            return  # the client went away mid-request: nothing was received
        if owner.mode == "hang":
            owner._hold.wait(owner.hang_seconds)
            self.close_connection = True
            return
        if owner.mode == "error":
            self._answer(500, {"error": "the capture server was told to fail"})
            return
        if owner.mode == "status":
            self._answer(owner.status, {"detail": "the capture server was told to refuse"})
            return
        if self.path.rstrip("/") not in EVENT_PATHS:
            self._answer(404, {"error": f"no endpoint {self.path}"})
            return
        try:
            if self.headers.get("Content-Encoding") == "gzip" or body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            payload = json.loads(body)
        except (OSError, ValueError) as exc:
            self._answer(400, {"error": str(exc)})
            return
        if owner.poison is not None and owner._poisoned(payload):
            self._answer(400, {"detail": f"the batch holds the event {owner.poison!r}"})
            return
        kept = owner._keep(payload)
        if owner.delay_seconds and kept > owner.delay_after:
            # A far-away PostHog: it has the events, its answer is late.
            owner._note_delay()
            owner._hold.wait(owner.delay_seconds)
        try:
            self._answer(200, {"status": 1})
        except ConnectionError:  # the client gave up waiting (or was killed): nothing to tell
            self.close_connection = True

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        if status in (429, 503) and self.server.owner.retry_after is not None:
            self.send_header("Retry-After", str(self.server.owner.retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: CaptureServer


class CaptureServer:
    """``with CaptureServer() as server:`` then ``Posthog(key, host=server.url)``.

    ``messages`` holds every message received (each batch flattened, in
    arrival order), ``batches`` the raw request bodies, ``paths`` every
    request path. ``mode`` is ``"ok"``, ``"error"`` (answer 500),
    ``"hang"`` (hold each request for ``hang_seconds``, then drop it) or
    ``"status"`` (answer ``status``, with ``Retry-After: retry_after`` on a
    429 or 503). ``poison`` names an event a batch is refused for (400), as
    PostHog refuses a malformed one.
    ``delay_seconds`` delays every answer of ``"ok"`` mode after the first
    ``delay_after`` batches: the messages are kept when the request arrives,
    the ``200`` is sent that many seconds later (a client that gives up, or
    is killed, meanwhile sent them all the same). ``delayed`` counts the
    answers held so (:meth:`wait_delayed` says when one is held, its batch
    already in ``batches``).
    :meth:`release` ends held requests and delays for good.
    ``port`` asks for a fixed port (``0``: any free one). Every attribute
    may be changed while it serves.
    """

    def __init__(
        self,
        mode: Mode = "ok",
        *,
        hang_seconds: float = 30.0,
        status: int = 500,
        retry_after: int | None = None,
        poison: str | None = None,
        delay_seconds: float = 0.0,
        delay_after: int = 0,
        port: int = 0,
    ) -> None:
        self.mode: Mode = mode
        self.hang_seconds = hang_seconds
        self.status = status
        self.retry_after = retry_after
        self.poison = poison
        self.delay_seconds = delay_seconds
        self.delay_after = delay_after
        #: How many answers were held by ``delay_seconds`` (their batches kept).
        self.delayed = 0
        self.messages: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._hold = threading.Event()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.owner = self
        # A short poll: stopping waits for the serve loop's next look (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL to give the client as ``host``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release held requests and stop serving (a server never entered just closes)."""
        self._hold.set()
        if self._thread.is_alive():  # shutdown() waits for a serve_forever that is running
            self._server.shutdown()
        self._server.server_close()

    def _note_request(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)
            self._arrived.notify_all()

    def _keep(self, payload: dict[str, Any]) -> int:
        """Keep a request's messages; how many batches are kept now, this one included."""
        batch = payload.get("batch")
        messages = batch if isinstance(batch, list) else [payload]
        with self._lock:
            self.batches.append(payload)
            self.messages.extend(m for m in messages if isinstance(m, dict))
            self._arrived.notify_all()
            return len(self.batches)

    def _note_delay(self) -> None:
        with self._lock:
            self.delayed += 1
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages arrived (or ``timeout``); return them all."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def wait_delayed(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``count`` answers are held by ``delay_seconds`` (their batches kept, the
        clients not yet answered); ``True`` if they are."""
        with self._arrived:
            return self._arrived.wait_for(lambda: self.delayed >= count, timeout)

    def _poisoned(self, payload: dict[str, Any]) -> bool:
        batch = payload.get("batch")
        messages = batch if isinstance(batch, list) else [payload]
        return any(isinstance(m, dict) and m.get("event") == self.poison for m in messages)

    def release(self) -> None:
        """Let held requests go on now (hung or delayed ones), and later ones too."""
        self._hold.set()

    def uuids(self) -> dict[str, int]:
        """How many times each event ``uuid`` arrived."""
        counts: dict[str, int] = {}
        with self._lock:
            for message in self.messages:
                uuid = message.get("uuid")
                if isinstance(uuid, str):
                    counts[uuid] = counts.get(uuid, 0) + 1
        return counts

    def events(self, name: str) -> list[dict[str, Any]]:
        """The messages received for event ``name``."""
        with self._lock:
            return [m for m in self.messages if m.get("event") == name]
