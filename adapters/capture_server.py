"""A local stand-in for PostHog's capture endpoint, for tests and the demo.

It listens on 127.0.0.1 (an ephemeral port), accepts ``POST /batch/``
(gzip or not), and keeps every message it receives, so a test can point the
real ``posthog`` client at it and assert on what arrived on the wire. It can
also misbehave on purpose: answer 500, or hold requests without answering.
No network beyond the loopback interface is ever used.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

__all__ = ["CaptureServer"]

Mode = Literal["ok", "error", "hang"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ANN401 - stdlib signature
        """Keep the test output quiet."""

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        owner._note_request(self.path)
        if owner.mode == "hang":
            owner._hold.wait(owner.hang_seconds)
            self.close_connection = True
            return
        if owner.mode == "error":
            self._answer(500, {"error": "the capture server was told to fail"})
            return
        if self.path.rstrip("/") not in ("/batch", "/capture", "/e"):
            self._answer(404, {"error": f"no endpoint {self.path}"})
            return
        try:
            if self.headers.get("Content-Encoding") == "gzip" or body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            payload = json.loads(body)
        except (OSError, ValueError) as exc:
            self._answer(400, {"error": str(exc)})
            return
        owner._keep(payload)
        self._answer(200, {"status": 1})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
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
    request path. ``mode`` is ``"ok"``, ``"error"`` (answer 500) or
    ``"hang"`` (hold each request for ``hang_seconds``, then drop it).
    """

    def __init__(self, mode: Mode = "ok", *, hang_seconds: float = 30.0) -> None:
        self.mode: Mode = mode
        self.hang_seconds = hang_seconds
        self.messages: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._hold = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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

    def _keep(self, payload: dict[str, Any]) -> None:
        batch = payload.get("batch")
        messages = batch if isinstance(batch, list) else [payload]
        with self._lock:
            self.batches.append(payload)
            self.messages.extend(m for m in messages if isinstance(m, dict))
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages arrived (or ``timeout``); return them all."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return list(self.messages)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The messages received for event ``name``."""
        with self._lock:
            return [m for m in self.messages if m.get("event") == name]
