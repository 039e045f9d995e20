"""idstitch's own conformance driver: ``python -m idstitch.conformance.driver``.

It speaks the protocol of docs/conformance.md: one JSON request per line on
stdin, one JSON reply per line on stdout, one process of a vector per
driver process. It uses only the public API (``idstitch.open``, the
``IdentityStitch`` methods, ``RecordingSink``, ``PostHogSink``): what a host
CLI would call. What a step ``sent`` is what the library handed its sink
during that step; in wire mode the same sink passes it on to a real
``PostHogSink`` pointed at the runner's capture server.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from typing import Any

from idstitch import Command
from idstitch.adapters.sinks import PostHogSink, RecordingSink
from idstitch.machine import IdentityStitch

__all__ = ["Driver", "main"]


class _DriverSink:
    """Records what the library handed over, refuses the next aliases on request, and passes
    the rest on to a real sink (wire mode)."""

    def __init__(self, inner: PostHogSink | None) -> None:
        self.inner = inner
        self.recorded = RecordingSink()
        self.refusals = 0
        self._lock = threading.Lock()

    @property
    def sends(self) -> bool:
        return True if self.inner is None else self.inner.sends

    def alias(self, *, user_id: str, device_id: str) -> bool:
        with self._lock:
            if self.refusals:
                self.refusals -= 1
                return False
        if self.inner is not None and not self.inner.alias(user_id=user_id, device_id=device_id):
            return False
        return self.recorded.alias(user_id=user_id, device_id=device_id)

    def capture(
        self,
        *,
        distinct_id: str,
        event: str,
        properties: Mapping[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        if self.inner is not None and not self.inner.capture(
            distinct_id=distinct_id, event=event, properties=properties, groups=groups
        ):
            return False
        return self.recorded.capture(
            distinct_id=distinct_id, event=event, properties=properties, groups=groups
        )

    def flush(self, timeout: float) -> None:
        if self.inner is not None:
            self.inner.flush(timeout)

    def taken(self, start: tuple[int, int]) -> list[dict[str, Any]]:
        """What was handed over since ``start`` (the counts :meth:`mark` returned)."""
        aliases, captures = start
        sent: list[dict[str, Any]] = [
            {"type": "alias", "user_id": a.user_id, "device_id": a.device_id}
            for a in self.recorded.aliases[aliases:]
        ]
        sent += [
            {"type": "capture", "event": c.event, "distinct_id": c.distinct_id}
            for c in self.recorded.captures[captures:]
        ]
        return sent

    def mark(self) -> tuple[int, int]:
        return len(self.recorded.aliases), len(self.recorded.captures)


class Driver:
    """One process of a vector: answers each request as the protocol says."""

    def __init__(self) -> None:
        self.stitch: IdentityStitch | None = None
        self.sink: _DriverSink | None = None
        self.command: Command | None = None

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The reply to one request (``ok: false`` and an ``error`` for one it cannot do)."""
        op = request.get("op")
        if op == "open":
            return self._open(request)
        stitch, sink = self.stitch, self.sink
        if stitch is None or sink is None:
            return {"ok": False, "error": f"{op!r} before open"}
        start = sink.mark()
        reply: dict[str, Any] = {"ok": True}
        if op == "response":
            reply["accepted"] = stitch.observe_authenticated_response(request["user_id"])
        elif op == "login":
            reply["accepted"] = stitch.login(request["user_id"])
        elif op == "concurrent_responses":
            self._concurrently(stitch, list(request["user_ids"]))
        elif op == "logout":
            stitch.logout()
        elif op == "clear":
            stitch.clear_distinct_id()
        elif op == "refuse_next_alias":
            sink.refusals += 1
        elif op == "capture":
            stitch.capture(request["event"])
        elif op == "exit":
            if self.command is not None:
                self.command.__exit__(None, None, None)
            stitch.close(timeout=5.0)
        else:
            return {"ok": False, "error": f"unknown op {op!r}"}
        return {**reply, "sent": sink.taken(start), "distinct_id": stitch.distinct_id}

    def _open(self, request: Mapping[str, Any]) -> dict[str, Any]:
        wire = request.get("posthog")
        inner = None
        if wire is not None:
            inner = PostHogSink(wire["api_key"], host=wire["host"], capture_mode="v0")
        self.sink = _DriverSink(inner)
        self.stitch = IdentityStitch.open(
            state_dir=request["state_dir"],
            runtime=request["runtime"],
            env=dict(request.get("env", {})),
            opt_out_vars=tuple(request.get("opt_out_vars", ())),
            sink=self.sink,
        )
        if request.get("command") is not None:
            self.command = self.stitch.command(request["command"])
            self.command.__enter__()
        return {"ok": True, "sent": [], "distinct_id": self.stitch.distinct_id}

    @staticmethod
    def _concurrently(stitch: IdentityStitch, user_ids: list[str]) -> None:
        """Each id observed by its own thread, all released at once (R5)."""
        gate = threading.Barrier(len(user_ids))

        def observe(user_id: str) -> None:
            gate.wait()
            stitch.observe_authenticated_response(user_id)

        threads = [threading.Thread(target=observe, args=(user,)) for user in user_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def main() -> int:
    """Answer requests from stdin until ``exit`` (or the end of input)."""
    driver = Driver()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            reply = driver.handle(request)
        except Exception as exc:  # noqa: BLE001 - the runner reads the failure as a reply
            request, reply = {}, {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if request.get("op") == "exit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
