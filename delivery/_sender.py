"""The sender: delivers a spool to PostHog in batches, then exits.

It runs detached from the host (``python -m idstitch.delivery SPOOL_DIR``,
see :mod:`._spawn`), or in the host's process for a bounded time where a
detached process would not outlive it. One sender at a time holds the
spool's lease; another one started meanwhile exits at once.

For each segment, oldest first, it turns the waiting lines into PostHog
messages with the real client (``posthog.Posthog(send=False)``; the
message is taken in ``before_send``, so ``$lib``, ``$groups`` and the other
enrichment are the client's own), keeping each event's ``uuid`` and
``timestamp``, and posts them with the client's own request function. After
each batch PostHog took, the segment's progress file records how far it got:
a SIGKILL at any point resends at most the batch in flight (PostHog drops the
duplicate by its ``uuid``).

A 5xx, 408, 429 or a network error is retried with exponential backoff and
jitter (a ``Retry-After`` is a minimum) while the run's budget lasts. Any
other 4xx is a refusal for good: the batch is split in halves until the
refused event is found alone, and it is dropped and counted. An alias that is
dropped (refused, or by the bounds) is recorded in the identity log, so the
device counts as not aliased and a later login aliases it again (R9).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from typing import TYPE_CHECKING, Any

from idstitch.store._fs import list_folder
from idstitch.store._lock import ProcessLock

from ._spool import (
    DROPPED_NAME,
    LEASE_NAME,
    MAX_AGE,
    MAX_BYTES,
    RETRY_NAME,
    RUN_NAME,
    SENT_SUFFIX,
    SPOOL_VERSION,
    TEMP_PREFIX,
    Segment,
    iso_now,
    iter_lines,
    read_json,
    segment_names,
    segments,
    write_json,
    write_small,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "BATCH_SIZE",
    "REQUEST_TIMEOUT",
    "RUN_BUDGET",
    "RunReport",
    "run_sender",
]

#: Events per request (PostHog's client batches 100 too).
BATCH_SIZE = 100
#: Seconds one request may take (a hanging server costs at most this per try).
REQUEST_TIMEOUT = 10.0
#: Seconds a detached sender runs at most; the next command starts another.
RUN_BUDGET = 30.0
#: Backoff between tries within a run: base and ceiling, in seconds.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: Tries in a row that fail without an answer (refused, unreachable, timed out) before the
#: run stops: the machine is probably offline, and the next command tries again.
NETWORK_TRIES = 4
#: After a run that could not deliver, no new sender starts for this long (doubling per
#: failed run, up to :data:`NEXT_RUN_CAP`): an offline laptop starts one a minute at most.
NEXT_RUN_BASE = 5.0
NEXT_RUN_CAP = 60.0


class _RefusedError(Exception):
    """PostHog refused a batch for good (a 4xx other than 408 and 429)."""

    def __init__(self, status: object) -> None:
        super().__init__(f"refused: HTTP {status}")
        self.status = status


class _OutOfTimeError(Exception):
    """The run's budget is spent before the batch could be delivered."""


class _Batch:
    """Events gathered for one request, across segments, and how far each segment got."""

    __slots__ = ("entries", "header", "key", "reached")

    def __init__(self) -> None:
        self.key: str | None = None
        self.header: Mapping[str, Any] | None = None
        self.entries: list[dict[str, Any]] = []
        self.reached: dict[str, tuple[Segment, int]] = {}

    def add(
        self,
        key: str,
        header: Mapping[str, Any],
        segment: Segment,
        offset: int,
        entry: dict[str, Any] | None,
    ) -> None:
        """Take ``entry`` (``None``: a damaged line, only passed over) ending at ``offset``."""
        self.key, self.header = key, header
        if entry is not None:
            self.entries.append(entry)
        self.reached[segment.path] = (segment, offset)

    def clear(self) -> None:
        self.key, self.header = None, None
        self.entries, self.reached = [], {}


def _destination(header: Mapping[str, Any]) -> str:
    """Where a segment's events go: the same key, host and options may share a request."""
    import json

    return json.dumps(
        [header.get("api_key"), header.get("host"), header.get("options")], sort_keys=True
    )


class RunReport:
    """What one sender run did."""

    __slots__ = ("delivered", "dropped", "error", "result", "tries")

    def __init__(self) -> None:
        self.result = "drained"  # "drained", "failed", "busy", "stopped"
        self.delivered = 0
        self.dropped: dict[str, int] = {}
        self.tries = 0
        self.error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "delivered": self.delivered,
            "dropped": dict(self.dropped),
            "tries": self.tries,
            "error": self.error,
        }


class _Messages:
    """Builds PostHog messages with the real client, one client per (key, host, options)."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._kept: list[dict[str, Any]] = []

    def _keep(self, message: dict[str, Any]) -> None:
        self._kept.append(message)

    def _client(self, header: Mapping[str, Any]) -> Any:  # noqa: ANN401 - posthog.Posthog
        key = _destination(header)
        client = self._clients.get(key)
        if client is None:
            import logging

            from posthog import Posthog

            quiet = logging.getLogger("posthog")
            if not quiet.handlers:
                quiet.addHandler(logging.NullHandler())
            options = {"is_server": False, **dict(header.get("options") or {})}
            options.update(send=False, before_send=self._keep, sync_mode=False)
            client = Posthog(str(header.get("api_key", "")), host=header.get("host"), **options)
            self._clients[key] = client
        return client

    def build(self, header: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any] | None:
        """The message ``entry`` is on the wire, or ``None`` if it is not one."""
        client = self._client(header)
        self._kept.clear()
        if entry.get("type") == "alias":
            # The client's alias(previous_id, distinct_id) puts previous_id in the event's
            # distinct_id: the user goes there, the device in properties.alias.
            client.alias(
                previous_id=entry["user_id"],
                distinct_id=entry["device_id"],
                timestamp=entry["timestamp"],
                uuid=entry["uuid"],
            )
        elif entry.get("type") == "capture":
            client.capture(
                entry["event"],
                distinct_id=entry["distinct_id"],
                properties=dict(entry.get("properties") or {}),
                groups=dict(entry.get("groups") or {}) or None,
                timestamp=entry["timestamp"],
                uuid=entry["uuid"],
            )
        return self._kept[0] if self._kept else None


def _posthog_post(header: Mapping[str, Any], batch: list[dict[str, Any]]) -> None:
    """Post one batch with the client's own request function; raise on anything but 200."""
    from posthog.request import APIError, batch_post

    options = dict(header.get("options") or {})
    try:
        batch_post(
            str(header.get("api_key", "")),
            header.get("host"),
            gzip=bool(options.get("gzip", False)),
            timeout=min(float(options.get("timeout", REQUEST_TIMEOUT)), REQUEST_TIMEOUT),
            batch=batch,
            historical_migration=bool(options.get("historical_migration", False)),
        )
    except APIError as exc:
        status = exc.status
        if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
            raise _RefusedError(status) from exc
        raise


class _Run:
    def __init__(
        self,
        folder: str,
        *,
        budget: float,
        post: Callable[[Mapping[str, Any], list[dict[str, Any]]], None],
        sleep: Callable[[float], None],
        batch_size: int,
        record_drop: Callable[[Mapping[str, Any], Mapping[str, Any], str], None],
    ) -> None:
        self.folder = folder
        self.deadline = time.monotonic() + budget
        self.post = post
        self.sleep = sleep
        self.batch_size = batch_size
        self.record_drop = record_drop
        self.report = RunReport()
        self.messages = _Messages()
        #: Each segment's size when the last pass listed the spool.
        self.listed: dict[str, int] = {}

    # ----------------------------------------------------------------- bounds

    def drop(self, reason: str, count: int) -> None:
        if count:
            self.report.dropped[reason] = self.report.dropped.get(reason, 0) + count

    def enforce_bounds(self, found: list[Segment]) -> list[Segment]:
        """Drop whole segments, oldest first: older than the age bound, or beyond the size."""
        if not found:
            return found
        newest = _header(found[-1]) or {}
        max_age = float(newest.get("max_age", MAX_AGE))
        max_bytes = int(newest.get("max_bytes", MAX_BYTES))
        now = time.time()
        kept: list[Segment] = []
        for segment in found:
            # An empty segment this old was left by a writer that died or failed creating it.
            if segment.created < now - max_age and (segment.size == 0 or not segment.in_use()):
                self.discard(segment, "expired")
            else:
                kept.append(segment)
        total = sum(segment.size - segment.sent for segment in kept)
        while total > max_bytes and len(kept) > 1 and not kept[0].in_use():
            oldest = kept.pop(0)
            total -= oldest.size - oldest.sent
            self.discard(oldest, "over_size")
        return kept

    def discard(self, segment: Segment, reason: str) -> None:
        header = _header(segment) or {}
        start = max(segment.sent, _header_end(segment))
        count = 0
        for _, line in iter_lines(segment.read_from(start)):
            entry = _entry(line)
            count += 1
            if entry is not None and entry.get("type") == "alias":
                self.record_drop(header, entry, reason)
        self.drop(reason, count)
        segment.remove()

    # --------------------------------------------------------------- delivery

    def deliver(self, found: list[Segment]) -> bool:
        """Deliver every segment's waiting events; ``False`` when the run must stop.

        Events are batched across segments (each process writes its own, so a
        thousand offline commands are a thousand segments) as long as they go
        to the same project; each segment's progress is recorded once the
        batch holding its events was taken.
        """
        batch = _Batch()
        ours: list[Segment] = []
        for segment in found:
            header = self.header_of(segment)
            if header is None:
                continue
            ours.append(segment)
            key = _destination(header)
            start = max(segment.sent, _header_end(segment))
            for end, line in iter_lines(segment.read_from(start)):
                entry = _entry(line)
                if entry is None:
                    self.drop("damaged", 1)
                if batch.key not in (None, key) and not self.flush(batch):
                    return False
                batch.add(key, header, segment, start + end, entry)
                if len(batch.entries) >= self.batch_size and not self.flush(batch):
                    return False
        if not self.flush(batch):
            return False
        for segment in ours:
            if not os.path.exists(segment.path) or segment.in_use():
                continue
            # Its writer is done, but may have appended after this pass read the segment.
            rest = segment.read_from(max(segment.sent, _header_end(segment)))
            if b"\n" in rest:
                continue  # whole lines not delivered yet: the next pass takes them
            if rest:
                self.drop("damaged", 1)  # a last line never finished (power cut, full disk)
            segment.remove()
        return True

    def header_of(self, segment: Segment) -> dict[str, Any] | None:
        """The header of a segment this run delivers; ``None`` for one it leaves (a newer
        build's) or has discarded (no header: written by no one, or damaged)."""
        header = _header(segment)
        if header is None:
            if not segment.in_use() and segment.size > 0:
                self.discard(segment, "damaged")
            return None
        return header if int(header.get("v", 0)) <= SPOOL_VERSION else None

    def flush(self, batch: _Batch) -> bool:
        """Send what ``batch`` holds and record each segment's progress; ``False``: stop."""
        if not batch.reached:
            return True
        if not all(os.path.exists(segment.path) for segment, _ in batch.reached.values()):
            return False  # purged meanwhile (the user opted out): send nothing more
        assert batch.header is not None
        messages: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for entry in batch.entries:
            message = self.messages.build(batch.header, entry)
            if message is None:
                self.drop("invalid", 1)
            else:
                messages.append((entry, message))
        try:
            self.send(batch.header, messages)
        except _OutOfTimeError:
            return False
        for segment, offset in batch.reached.values():
            segment.mark_sent(offset)
        batch.clear()
        return True

    def send(
        self, header: Mapping[str, Any], messages: Sequence[tuple[dict[str, Any], dict[str, Any]]]
    ) -> None:
        """Deliver ``messages``; a refused batch is split until the refused event is alone."""
        if not messages:
            return
        try:
            self.post_with_retries(header, [message for _, message in messages])
        except _RefusedError as refused:
            if len(messages) == 1:
                entry = messages[0][0]
                self.drop("refused", 1)
                if entry.get("type") == "alias":
                    self.record_drop(header, entry, str(refused))
                return
            half = len(messages) // 2
            self.send(header, messages[:half])
            self.send(header, messages[half:])
            return
        self.report.delivered += len(messages)

    def post_with_retries(self, header: Mapping[str, Any], batch: list[dict[str, Any]]) -> None:
        attempt = unanswered = 0
        while True:
            self.report.tries += 1
            try:
                self.post(header, batch)
            except _RefusedError:
                raise
            except Exception as exc:  # 5xx, 408, 429, network errors: retried
                self.report.error = _describe(exc)
                unanswered = 0 if hasattr(exc, "status") else unanswered + 1
                if unanswered >= NETWORK_TRIES:
                    raise _OutOfTimeError from exc
                wait = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5)
                retry_after = getattr(exc, "retry_after", None)
                if isinstance(retry_after, int | float) and retry_after > wait:
                    wait = min(float(retry_after), BACKOFF_CAP * 4)
                if time.monotonic() + wait >= self.deadline:
                    raise _OutOfTimeError from exc
                self.sleep(wait)
                attempt += 1
            else:
                return

    def sweep(self) -> None:
        """Remove what a killed sender left: its temporaries, progress files of gone segments."""
        names = set(list_folder(self.folder))
        for name in names:
            orphan = name.endswith(SENT_SUFFIX) and name[: -len(SENT_SUFFIX)] not in names
            if name.startswith(TEMP_PREFIX) or orphan:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.folder, name))

    def grown(self) -> bool:
        """Whether a segment is new or longer than the last pass listed it: a writer appended
        after that pass looked (sizes only: one listing and a ``stat`` per segment)."""
        for name in segment_names(self.folder):
            try:
                size = os.lstat(os.path.join(self.folder, name)).st_size
            except OSError:
                continue  # removed meanwhile
            if size > self.listed.get(name, 0):
                return True
        return False

    def run(self) -> RunReport:
        """Pass over the spool until a pass finds nothing new and nothing was appended since
        it listed the spool (other CLIs may append meanwhile)."""
        self.sweep()
        while True:
            before = (self.report.delivered, sum(self.report.dropped.values()))
            found = segments(self.folder)
            self.listed = {segment.name: segment.size for segment in found}
            if time.monotonic() >= self.deadline or not self.deliver(self.enforce_bounds(found)):
                self.report.result = "failed" if self.report.error else "stopped"
                return self.report
            moved = (self.report.delivered, sum(self.report.dropped.values())) != before
            if not moved and not self.grown():
                return self.report


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status}" if status is not None else type(exc).__name__


def _entry(line: bytes) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(line)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("capture", "alias"):
        return None
    if not isinstance(value.get("uuid"), str) or not isinstance(value.get("timestamp"), str):
        return None
    return value


def _first_line(segment: Segment) -> bytes | None:
    data = segment.read_from(0, limit=1 << 16)  # a header is far shorter
    end = data.find(b"\n")
    return None if end < 0 else data[:end]


def _header(segment: Segment) -> dict[str, Any] | None:
    import json

    line = _first_line(segment)
    if line is None:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("type") == "header" else None


def _header_end(segment: Segment) -> int:
    line = _first_line(segment)
    return 0 if line is None else len(line) + 1


def _record_drop(header: Mapping[str, Any], entry: Mapping[str, Any], reason: str) -> None:
    """Record in the identity log that the alias ``entry`` was finally dropped (R9)."""
    state_dir = header.get("state_dir")
    if not isinstance(state_dir, str):
        return  # an ephemeral run's spool: it never aliases (R2)
    from idstitch.service import record_dropped_alias

    record_dropped_alias(
        state_dir,
        device_id=str(entry.get("device_id")),
        user_id=str(entry.get("user_id")),
        reason=reason,
    )


def run_sender(
    folder: str,
    *,
    budget: float = RUN_BUDGET,
    post: Callable[[Mapping[str, Any], list[dict[str, Any]]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    batch_size: int = BATCH_SIZE,
) -> RunReport:
    """Deliver the spool at ``folder`` within ``budget`` seconds; one sender at a time.

    Returns at once (``result == "busy"``) when another sender holds the
    lease. ``post`` replaces the HTTP request (tests of what cannot run
    here); it must raise as :func:`posthog.request.batch_post` does.
    """
    deadline = time.monotonic() + budget
    lease = ProcessLock(os.path.join(folder, LEASE_NAME))
    while True:
        report = RunReport()
        try:
            taken = lease.acquire(0)
        except OSError as exc:
            report.result, report.error = "failed", repr(exc)
            return report
        if not taken:
            report.result = "busy"
            return report
        started = time.time()
        run = _Run(
            folder,
            budget=max(0.0, deadline - time.monotonic()),
            post=post or _posthog_post,
            sleep=sleep,
            batch_size=batch_size,
            record_drop=_record_drop,
        )
        try:
            try:
                report = run.run()
            except Exception as exc:  # noqa: BLE001 - a detached process reports, never raises
                report = run.report
                report.result, report.error = "failed", repr(exc)
            _note_run(folder, report, started)
        finally:
            lease.release()
        # A host that appended after this run's last pass listed the spool saw the lease
        # held (it appends, then looks at the lease) and started no sender: look once more
        # after letting go, whether or not this run delivered anything, so its events do
        # not wait for the next command.
        if report.result != "drained" or time.monotonic() >= deadline or not run.grown():
            return report


def _note_run(folder: str, report: RunReport, started: float) -> None:
    """Keep the run's outcome for ``show``/``doctor``, the drop counts, and the next try."""
    previous = read_json(os.path.join(folder, RUN_NAME))
    failures = int(previous.get("consecutive_failures", 0)) if report.result == "failed" else 0
    if report.result == "failed":
        failures += 1
    record: dict[str, Any] = {
        **report.as_dict(),
        "started": iso_now(started),
        "finished": iso_now(),
        "consecutive_failures": failures,
        "last_delivery": previous.get("last_delivery"),
    }
    if report.delivered:
        record["last_delivery"] = iso_now()
    try:
        write_json(os.path.join(folder, RUN_NAME), record)
        if report.dropped:
            counts = read_json(os.path.join(folder, DROPPED_NAME))
            for reason, count in report.dropped.items():
                counts[reason] = int(counts.get(reason, 0)) + count
            write_json(os.path.join(folder, DROPPED_NAME), counts)
        retry = os.path.join(folder, RETRY_NAME)
        if failures:
            pause = min(NEXT_RUN_CAP, NEXT_RUN_BASE * 2 ** (failures - 1))
            write_small(retry, f"{time.time() + pause:.3f}".encode())
        elif os.path.exists(retry):
            os.unlink(retry)
    except OSError:
        pass  # a full disk: the next run counts again
