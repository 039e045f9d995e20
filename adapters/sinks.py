"""Where identity events go: the sinks.

A sink has three methods; ``False`` from ``alias`` or ``capture`` means
"not queued" (rule R9 for an alias). :class:`SpoolSink` is the one to use:
it appends every event to a durable spool and a detached sender delivers
it, so a command never waits for PostHog (R17). :class:`PostHogSink` sends
from the host's own process. :class:`NullSink` sends nothing and
:class:`RecordingSink` keeps what it was given, for tests and dry runs.
"""

from __future__ import annotations

import _thread

from idstitch.service._sinks import NullSink

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from idstitch.service._protocol import Sink


__all__ = [
    "NullSink",
    "PostHogSink",
    "PrintSink",
    "RecordedAlias",
    "RecordedCapture",
    "RecordingSink",
    "Sink",
    "SpoolSink",
]


class RecordedAlias:
    """One alias a :class:`RecordingSink` was given."""

    __slots__ = ("device_id", "user_id")

    def __init__(self, user_id: str, device_id: str) -> None:
        self.user_id = user_id
        self.device_id = device_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordedAlias) and (self.user_id, self.device_id) == (
            other.user_id,
            other.device_id,
        )

    def __hash__(self) -> int:
        return hash((self.user_id, self.device_id))

    def __repr__(self) -> str:
        return f"RecordedAlias(user_id={self.user_id!r}, device_id={self.device_id!r})"


class RecordedCapture:
    """One event a :class:`RecordingSink` was given."""

    __slots__ = ("distinct_id", "event", "groups", "properties")

    def __init__(
        self,
        distinct_id: str,
        event: str,
        properties: dict[str, Any],
        groups: dict[str, str],
    ) -> None:
        self.distinct_id = distinct_id
        self.event = event
        self.properties = properties
        self.groups = groups

    def _key(self) -> tuple[str, str, dict[str, Any], dict[str, str]]:
        return (self.distinct_id, self.event, self.properties, self.groups)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordedCapture) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # holds dicts: compare, never hash

    def __repr__(self) -> str:
        return (
            f"RecordedCapture(distinct_id={self.distinct_id!r}, event={self.event!r}, "
            f"properties={self.properties!r}, groups={self.groups!r})"
        )


class RecordingSink:
    """Keeps every alias and capture in :attr:`aliases` and :attr:`captures`.

    ``fail_aliases`` makes the next that many ``alias`` calls return
    ``False`` (an enqueue failure, rule R9); ``raise_on_alias`` makes them
    raise instead.
    """

    def __init__(self, *, fail_aliases: int = 0, raise_on_alias: bool = False) -> None:
        self.aliases: list[RecordedAlias] = []
        self.captures: list[RecordedCapture] = []
        self.flushes: list[float] = []
        self.fail_aliases = fail_aliases
        self.raise_on_alias = raise_on_alias
        self._lock = _thread.allocate_lock()

    def alias(self, *, user_id: str, device_id: str) -> bool:
        """Record an alias, or fail as configured."""
        with self._lock:
            if self.raise_on_alias:
                raise RuntimeError("RecordingSink: alias failed (raise_on_alias)")
            if self.fail_aliases > 0:
                self.fail_aliases -= 1
                return False
            self.aliases.append(RecordedAlias(user_id, device_id))
            return True

    def capture(
        self,
        *,
        distinct_id: str,
        event: str,
        properties: Mapping[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        """Record an event."""
        with self._lock:
            self.captures.append(
                RecordedCapture(distinct_id, event, dict(properties), dict(groups))
            )
            return True

    def flush(self, timeout: float) -> None:
        """Record that a flush was asked for."""
        with self._lock:
            self.flushes.append(timeout)


class PrintSink:
    """A dry run: writes what would be sent to a stream (stderr by default), sends nothing."""

    def __init__(self, stream: Any = None) -> None:  # noqa: ANN401 - any text stream
        self._stream = stream

    def _print(self, what: str, payload: Mapping[str, Any]) -> bool:
        import json
        import sys

        stream = self._stream if self._stream is not None else sys.stderr
        print(f"idstitch would send {what}: {json.dumps(payload, sort_keys=True)}", file=stream)
        return True

    def alias(self, *, user_id: str, device_id: str) -> bool:
        """Print the ``$create_alias`` as it would go on the wire; ``False``: it was not sent.

        A merge is made once per device, ever (rule R3): counting a printed one
        as queued would mark the device aliased while PostHog never merged it.
        The service records the refusal (R9) and a later run with a real sink
        aliases the device then.
        """
        self._print("$create_alias", {"distinct_id": user_id, "properties": {"alias": device_id}})
        return False

    def capture(
        self,
        *,
        distinct_id: str,
        event: str,
        properties: Mapping[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        """Print the event as it would go on the wire."""
        props = _wire_properties(distinct_id, properties)
        payload = {"distinct_id": distinct_id, "properties": props, "groups": dict(groups)}
        return self._print(event, payload)

    def flush(self, timeout: float) -> None:
        """Nothing is queued; says which HTTP hook never saw its header or its callable's id.

        A header name misspelled in ``httpx_hooks(stitch, "X-Usr-Id")`` names no
        one and raises nothing: the dry run says so, once, at the first flush
        after the hook read responses (``idstitch.adapters.http``).
        """
        import sys

        from .http import _unseen_lines

        stream = self._stream if self._stream is not None else sys.stderr
        try:
            for line in _unseen_lines():
                print(line, file=stream)
        except (OSError, ValueError):  # a closed stream: the dry run's note is lost, nothing more
            pass


def _wire_properties(distinct_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """The properties an event carries; device-only events create no person."""
    props = dict(properties)
    if distinct_id == props.get("$device_id"):
        # Sent under the device id before login: PostHog must not create a person
        # for it; the alias merges this history into the user's person later.
        props["$process_person_profile"] = False
    return props


class _PostHogDestination:
    """A PostHog project key and host, and the ``IDSTITCH_DEBUG`` dry run, for the real sinks."""

    def __init__(
        self,
        api_key: str,
        host: str | None,
        env: Mapping[str, str] | None,
        client_options: dict[str, Any],
    ) -> None:
        import os

        from .runtime import is_truthy

        self._api_key = api_key
        self._host = host
        self._options = {"is_server": False, **client_options}
        environ = os.environ if env is None else env
        self._env = environ
        self._dry_run = PrintSink() if is_truthy(environ.get("IDSTITCH_DEBUG")) else None

    @property
    def sends(self) -> bool:
        """Whether anything can be sent: ``False`` with an empty key or ``disabled=True``.

        The posthog client then drops every event (it returns ``None``), so the
        service stamps and never tries an alias that would only fail (rule R9).
        Nor in ``IDSTITCH_DEBUG`` mode: a dry run sends nothing, so it spends no
        alias and appends no record for one; its captures are printed.
        """
        if self._dry_run is not None:
            return False
        return bool(self._api_key.strip()) and not self._options.get("disabled", False)

    def alias(self, *, user_id: str, device_id: str) -> bool:
        """Hand over the ``$create_alias`` merging ``device_id``'s history into ``user_id``
        (printed instead in a dry run); ``False``: not queued (R9)."""
        if self._dry_run is not None:
            return self._dry_run.alias(user_id=user_id, device_id=device_id)
        return self._alias(user_id, device_id)

    def capture(
        self,
        *,
        distinct_id: str,
        event: str,
        properties: Mapping[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        """Hand over ``event`` under ``distinct_id`` (printed instead in a dry run);
        device-only events create no person."""
        if self._dry_run is not None:
            return self._dry_run.capture(
                distinct_id=distinct_id, event=event, properties=properties, groups=groups
            )
        return self._capture(distinct_id, event, _wire_properties(distinct_id, properties), groups)

    def _alias(self, user_id: str, device_id: str) -> bool:
        raise NotImplementedError

    def _capture(
        self,
        distinct_id: str,
        event: str,
        properties: dict[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        raise NotImplementedError


class SpoolSink(_PostHogDestination):
    """Events go to a durable spool; a detached sender delivers them to PostHog (rule R17).

    ``capture`` and ``alias`` append one line (a ``uuid`` and a timestamp
    fixed now, the distinct id, properties and groups) to the spool and
    return: ``True`` means "durably in the spool". At :meth:`flush` (the
    command wrapper's exit, :meth:`IdentityStitch.close`, or the end of the
    process) a sender is started in the background when the spool holds
    events; the command does not wait for it. Where a background process
    would not outlive the host (a container whose first process is the CLI),
    :meth:`flush` delivers in-process instead, for at most ``in_process_bound``
    seconds (``delivery="detached"`` or ``"in_process"`` chooses for the host;
    ``"auto"`` decides per run). A detached sender runs for at most
    ``sender_budget`` seconds (default 30).

    The service attaches the sink to the state dir when it opens it: the
    spool is the state dir's ``spool/`` folder (persistent runtime), or a
    folder of the system's temporary directory for an ephemeral run. Opting
    out deletes what the spool holds. ``max_bytes`` and ``max_age`` (seconds)
    bound the spool: the oldest events are dropped first, and counted.
    ``client_options`` go to ``posthog.Posthog`` in the sender (JSON values
    only: they are written in the spool), for example ``gzip=True``.
    ``IDSTITCH_DEBUG`` prints instead, as :class:`PostHogSink` does.
    """

    def __init__(
        self,
        api_key: str,
        host: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        max_bytes: int = 10 * 1024 * 1024,
        max_age: float = 14 * 24 * 3600.0,
        in_process_bound: float = 1.0,
        delivery: str = "auto",
        sender_budget: float | None = None,
        **client_options: Any,  # noqa: ANN401 - passed through to posthog.Posthog, as JSON
    ) -> None:
        if delivery not in ("auto", "detached", "in_process"):
            raise ValueError(
                f"SpoolSink: delivery={delivery!r}; use 'auto', 'detached' or 'in_process'"
            )
        for name, value in client_options.items():
            if not isinstance(value, str | int | float | bool | type(None)):
                raise TypeError(
                    f"SpoolSink: client option {name}={value!r} is not a JSON scalar; the "
                    "sender runs in another process and reads its options from the spool"
                )
        super().__init__(api_key, host, env, client_options)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.in_process_bound = in_process_bound
        self.delivery = delivery
        self.sender_budget = sender_budget
        #: The spool folder once attached (``None`` before, or when nothing is spooled).
        self.folder: str | None = None
        self._mode: str | None = None
        self._root = "/"
        #: The senders this process started (for tests and long-lived hosts).
        self.sender_pids: list[int] = []
        self._writer: Any = None
        self._state_dir: str | None = None
        self._at_exit = False
        self._lock = _thread.allocate_lock()
        from idstitch.store._lock import at_fork_in_child

        at_fork_in_child(self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        # Another thread may have held the lock at the fork; the parent's senders are not
        # the child's to collect. (The writer starts a segment of its own by itself.)
        self._lock = _thread.allocate_lock()
        self.sender_pids = []

    def attach(
        self, *, state_dir: str | None, persistent: bool, opted_out: bool, root: str = "/"
    ) -> None:
        """Called by :meth:`IdentityStitch.open`: where the spool is, and whether to use it.

        Reads nothing and imports nothing on a start (the spool's modules load
        with the first event), except under opt-out: then what the state dir's
        spool holds is deleted now.
        """
        import os

        from idstitch.service._runtime import SENDER_VARIABLE
        from idstitch.store._names import SPOOL_NAME

        if opted_out:
            earlier, self._mode, self.folder = self.folder, "off", None
            if self._writer is not None:  # its segment is deleted below: never append to it
                self._writer.close()
                self._writer = None
            if state_dir is not None or earlier is not None:
                from idstitch.delivery._spool import purge

                for folder in {earlier, state_dir and os.path.join(state_dir, SPOOL_NAME)}:
                    if folder is not None:
                        purge(folder)  # opt-out is retroactive (a recorded disable too)
            return
        if self._env.get(SENDER_VARIABLE):
            self._mode, self.folder = "off", None
            return
        if self._mode == "off":  # attached again after a disable was undone: decide anew
            self._mode = None
        self._state_dir = state_dir if persistent else None
        self._root = root
        if persistent and state_dir is not None:
            self.folder = os.path.join(state_dir, SPOOL_NAME)
        else:
            self.folder = _temporary_spool(state_dir, self._env)

    @property
    def mode(self) -> str:
        """``"detached"``, ``"in_process"`` or ``"off"`` (opted out, or inside a sender);
        ``delivery="auto"`` is decided the first time it is asked (at the first flush)."""
        if self._mode is None:
            if self.delivery != "auto":
                self._mode = self.delivery
            else:
                from idstitch.delivery._spawn import can_outlive

                self._mode = "detached" if can_outlive(self._root) else "in_process"
        return self._mode

    def _writer_for(self) -> Any:  # noqa: ANN401 - a SpoolWriter, imported lazily
        if self._writer is None:
            if self.folder is None and self._mode != "off":
                self.attach(state_dir=None, persistent=False, opted_out=False)
            if self.folder is None:
                return None
            from idstitch.delivery._spool import SpoolWriter

            header = {
                "api_key": self._api_key,
                "host": self._host,
                "options": self._options,
                "state_dir": self._state_dir,
                "max_bytes": self.max_bytes,
                "max_age": self.max_age,
            }
            self._writer = SpoolWriter(self.folder, header, max_bytes=self.max_bytes)
        return self._writer

    def _append(self, entry: dict[str, Any]) -> bool:
        if not self.sends:  # no key, or disabled: PostHog would take none of it
            return False
        with self._lock:
            writer = self._writer_for()
            if writer is None:
                return False
            if not self._at_exit:
                import atexit

                atexit.register(self._flush_at_exit)
                self._at_exit = True
        return bool(writer.append(entry))

    def _alias(self, user_id: str, device_id: str) -> bool:
        """Spool the alias. ``False`` (not queued: R9) when the spool cannot take it: a full
        or read-only disk, a spool over its bound."""
        from idstitch.delivery._spool import iso_now, new_uuid

        return self._append(
            {
                "type": "alias",
                "uuid": new_uuid(),
                "timestamp": iso_now(),
                "user_id": user_id,
                "device_id": device_id,
            }
        )

    def _capture(
        self,
        distinct_id: str,
        event: str,
        properties: dict[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        from idstitch.delivery._spool import iso_now, new_uuid

        return self._append(
            {
                "type": "capture",
                "uuid": new_uuid(),
                "timestamp": iso_now(),
                "event": event,
                "distinct_id": distinct_id,
                "properties": properties,
                "groups": dict(groups),
            }
        )

    def flush(self, timeout: float) -> None:
        """Hand the spool to a sender and return: detached, or in-process for a bounded time.

        A sender is started when this process spooled something or the spool
        still holds events of earlier runs, unless one is running already (or
        a failed run asked for a pause); never in the ``IDSTITCH_DEBUG`` dry
        run, which leaves earlier runs' events for a run that sends. Never raises.
        """
        import os
        import time

        from idstitch.delivery._spawn import reap, spawn_sender

        if self._dry_run is not None:  # a dry run sends nothing, nor earlier runs' events
            self._dry_run.flush(timeout)
            return
        with self._lock:
            writer, folder = self._writer, self.folder
            appended = writer is not None and writer.appended > 0
            if writer is not None:
                writer.close()
                writer.appended = 0
        if folder is None or self.mode == "off":
            return
        from idstitch.delivery._spool import segment_names

        if not appended and not segment_names(folder):
            return
        try:
            reap(self.sender_pids)
            if self.mode == "in_process":
                from idstitch.delivery._spool import retry_after

                if time.time() >= retry_after(folder):  # a failed run asked for a pause
                    self._deliver_here(folder, min(timeout, self.in_process_bound))
                return
            pid = spawn_sender(
                folder,
                env=self._env if self._env is not os.environ else None,
                budget=self.sender_budget,
            )
        except OSError as exc:
            from idstitch.events._voice import debug

            debug("idstitch.adapters", "idstitch: could not start the sender (%r)", exc)
            return
        if pid is not None:
            self.sender_pids.append(pid)

    def _deliver_here(self, folder: str, bound: float) -> None:
        """Deliver from this process in a daemon thread, waiting at most ``bound`` seconds."""
        import threading

        from idstitch.delivery._sender import run_sender

        worker = threading.Thread(
            target=run_sender,
            args=(folder,),
            kwargs={"budget": bound},
            name="idstitch-send",
            daemon=True,
        )
        worker.start()
        worker.join(bound)

    def _flush_at_exit(self) -> None:
        writer = self._writer
        if writer is not None and writer.appended > 0:
            self.flush(self.in_process_bound)


def _temporary_spool(state_dir: str | None, env: Mapping[str, str]) -> str:
    """An ephemeral run's spool: a folder of the temporary directory, one per user and app."""
    import os
    import zlib

    base = env.get("TMPDIR") or "/tmp"  # noqa: S108 - a 0700 folder of our own, checked
    uid = os.getuid() if hasattr(os, "getuid") else 0
    key = zlib.crc32((state_dir or "").encode("utf-8", "surrogateescape"))
    return os.path.join(base, f"idstitch-spool-{uid}-{key:08x}")


class PostHogSink(_PostHogDestination):
    """The real PostHog client behind the sink protocol.

    The ``posthog`` package is imported, and its client built (with
    ``is_server=False``), the first time something is sent: a run that sends
    nothing never pays for it. ``client_options`` go to ``posthog.Posthog``
    (for example ``gzip=True``, ``capture_mode="v0"``). With
    ``IDSTITCH_DEBUG`` set truthy in ``env``, nothing is sent: what would be
    sent is printed to stderr instead (see :class:`PrintSink`).
    """

    def __init__(
        self,
        api_key: str,
        host: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        **client_options: Any,  # noqa: ANN401 - passed through to posthog.Posthog
    ) -> None:
        super().__init__(api_key, host, env, client_options)
        self._client: Any = None
        self._lock = _thread.allocate_lock()

    def _posthog(self) -> Any:  # noqa: ANN401 - posthog.Posthog, imported lazily
        with self._lock:
            if self._client is None:
                import logging

                from posthog import Posthog

                quiet = logging.getLogger("posthog")
                if not quiet.handlers:
                    # Its warnings (a dead server at exit...) reach the host's logging if it
                    # has any; never Python's last-resort print to the CLI's stderr.
                    quiet.addHandler(logging.NullHandler())
                self._client = Posthog(self._api_key, host=self._host, **self._options)
            return self._client

    def _alias(self, user_id: str, device_id: str) -> bool:
        """Queue the alias. On the wire: ``distinct_id`` is the user and
        ``properties.alias`` the device. The Python client's ``alias(previous_id,
        distinct_id)`` puts ``previous_id`` in the event's ``distinct_id``, so the user
        goes there."""
        queued = self._posthog().alias(previous_id=user_id, distinct_id=device_id)
        return queued is not None

    def _capture(
        self,
        distinct_id: str,
        event: str,
        properties: dict[str, Any],
        groups: Mapping[str, str],
    ) -> bool:
        queued = self._posthog().capture(
            event, distinct_id=distinct_id, properties=properties, groups=dict(groups) or None
        )
        return queued is not None

    def flush(self, timeout: float) -> None:
        """Deliver what is queued, returning after ``timeout`` seconds at the latest.

        The client is shut down (its final delivery) in a daemon thread that is
        abandoned at the deadline: a request in flight is not cut short, so a
        dead or slow PostHog would otherwise hold the CLI. While that thread
        owns the shutdown, the client's own exit handler does not wait again
        (it would add up to a second at exit). A later send builds a new client.
        """
        if self._dry_run is not None:
            self._dry_run.flush(timeout)
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return
        import threading

        worker = threading.Thread(target=client.shutdown, name="idstitch-flush", daemon=True)
        worker.start()
        worker.join(timeout)


def __getattr__(name: str) -> object:
    if name == "Sink":  # the Protocol lives apart so that typing loads only when asked for
        from idstitch.service._protocol import Sink

        return Sink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
