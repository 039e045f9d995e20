"""HTTP client hooks: learn the authenticated user from your API's responses.

One :class:`IdentityStitch` per process, shared by every client: the hooks
only report what they see (``observe_authenticated_response``); the service
decides, so several clients, threads and tasks alias at most once.

Every response is read except 401 (Unauthorized) and 407 (Proxy
Authentication Required): a 422 on a failed ``deploy`` or a 404 still comes
from the API that authenticated the request, so an id it carries names the
user (a redirect's own headers too: the API sent them). A 401 answers a
request the API did not authenticate, and a 407 is a proxy's answer, not
the API's: an id there names no one. An error page from a proxy or a CDN
(a 502, a 503) carries no id and so names no one. What a hook reads:

- A header name (``"X-User-Id"``): every line of that header. The response
  names a user when every line holds the same id (a proxy that repeats the
  header, or joins the repeats into ``"u, u"``, changes nothing); lines
  holding different ids name no one.
- A callable: called on the response as the hook receives it, before its
  body is read. If it names no one there (it returns ``None`` or raises, as
  ``response.json()`` raises ``httpx.ResponseNotRead``), the httpx hooks call
  it once more on a copy of the body after the host itself has read the
  whole body: within ``client.get``, or when a ``client.stream`` reader
  reaches the end. A body over 1 MiB is not copied.

A hook never reads a body itself, so a stream that never ends, or a large
download, neither waits on idstitch nor is buffered by it. A ``requests``
response sent with ``stream=True`` is not given to a callable at all (it
would read the body); a header name is still read.

The hooks import neither ``httpx`` nor ``requests`` (start-up cost); the
httpx hooks import ``httpx`` when a callable needs a body, by which time the
host has. Nothing a hook does raises into your request (rule R15): an
illegal id, a failing callable or contradictory headers are logged once and
the response is ignored. A callable that fails on an error status (a 500's
HTML page is no JSON) is a debug message, not a warning.

**Never seen.** Each hook counts the responses it read and whether its
header ever appeared (or its callable returned an id). At
:meth:`IdentityStitch.close` (the sink's flush) and at the end of the
process, a header that never appeared, or a callable that never returned
an id, over at least one response is reported once: printed to stderr in
the ``IDSTITCH_DEBUG`` dry run, a debug message otherwise (a misspelled
header name would otherwise fail silently).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from typing import Any, TypeAlias

    from idstitch.machine import IdentityStitch

    #: Reads the user id from a response; ``None`` when the response names nobody.
    Extractor: TypeAlias = Callable[[Any], "str | None"]

__all__ = [
    "Extractor",
    "httpx_async_hooks",
    "httpx_hooks",
    "requests_hook",
    "user_id_from",
]

#: The largest body (in bytes, as received) copied for a callable to read again.
_BODY_LIMIT = 1 << 20
_TOO_LARGE = f"idstitch: not keeping a response body over {_BODY_LIMIT} bytes for the user id"
_STREAMED = "idstitch: a callable user_id is not called on a requests stream=True response"
#: The statuses whose responses name no one: the API did not authenticate the request
#: (401), or the answer is a proxy's (407).
_UNAUTHENTICATED = (401, 407)


def user_id_from(source: str | Extractor) -> Extractor:
    """An extractor from a header name (``"X-User-Id"``) or a callable returning the id.

    Every response but a 401 or a 407 is read (module docstring). A header
    name reads every line of the header; see the module docstring for
    repeated lines.
    """
    read = source if callable(source) else _header_reader(source)

    def extract(response: Any) -> str | None:  # noqa: ANN401 - any client's response
        if not _authenticated(response):
            return None
        return read(response)

    return extract


def _authenticated(response: Any) -> bool:  # noqa: ANN401 - any client's response
    """Whether ``response`` answers an authenticated request: any status but 401 and 407."""
    return int(getattr(response, "status_code", 200)) not in _UNAUTHENTICATED


def _error_status(response: Any) -> bool:  # noqa: ANN401 - any client's response
    """Whether ``response`` is an error (4xx, 5xx): its body may well not be what a callable
    expects, so a callable failing there is no news."""
    return int(getattr(response, "status_code", 200)) >= 400


def _header_reader(header: str, watch: _Watch | None = None) -> Extractor:
    """Reads the id in header ``header``; ``watch`` learns whether the header was there."""

    def read(response: Any) -> str | None:  # noqa: ANN401 - any client's response
        values = _header_values(response, header)
        if values and watch is not None:
            watch.found = True  # the header is there, even if its lines disagree
        return _one_id(header, values)

    return read


def _header_values(response: Any, name: str) -> list[Any]:  # noqa: ANN401
    """Every line of header ``name``, one value each, as the client received them."""
    headers = response.headers
    get_list = getattr(headers, "get_list", None)  # httpx.Headers
    if get_list is None:
        # requests joins repeated lines into one "a, b"; urllib3's dict under it keeps them apart.
        raw_headers = getattr(getattr(response, "raw", None), "headers", None)
        get_list = getattr(raw_headers, "getlist", None)
    if get_list is not None:
        return list(get_list(name))
    value = headers.get(name)
    return [] if value is None else [value]


def _one_id(header: str, values: list[Any]) -> str | None:
    """The id every non-empty line names, or ``None`` when they name no one or several ids."""
    ids: list[str] = []  # normally; the service checks what it is given
    for value in filter(None, values):  # an empty line names no one
        for user_id in _joined(value):
            if user_id not in ids:
                ids.append(user_id)
    if len(ids) > 1:
        _log_once(f"idstitch: ignoring a response whose {header} lines differ", debug=True)
        return None
    return ids[0] if ids else None


def _joined(value: Any) -> list[Any]:  # noqa: ANN401 - a header value, normally a str
    """The ids one header line holds: lines a proxy or client joined with ``", "`` split up.

    ``"u, u"`` is ``u``; ``"u, v"`` is both (so the response names no one); a
    line without ``", "`` is one id as it stands.
    """
    if isinstance(value, str) and ", " in value:
        return list(dict.fromkeys(value.split(", ")))
    return [value]


def _report(
    stitch: IdentityStitch, read: Callable[[], Any], watch: _Watch, *, quiet: bool = False
) -> None:
    """Hand the id ``read`` returns to the service; nothing raises out of here (rule R15).

    ``quiet``: a failing ``read`` is a debug message (an error page), not a warning.
    """
    from idstitch.events import IllegalUserIdError

    try:
        user_id = read()
        if user_id is not None:
            watch.found = True
            stitch.observe_authenticated_response(user_id)
    except IllegalUserIdError as exc:
        _log_once(f"idstitch: ignoring the user id in a response: {exc.reason}")
    except Exception as exc:  # noqa: BLE001 - R15: a hook never breaks the request
        on = " on an error page" if quiet else ""  # each its own message, logged once
        _log_once(f"idstitch: response hook failed{on}: {type(exc).__name__}", debug=quiet)


def _observer(stitch: IdentityStitch, source: str | Extractor) -> Callable[[Any], None]:
    watch = _Watch.of(source)
    read = source if callable(source) else _header_reader(source, watch)

    def observe(response: Any) -> None:  # noqa: ANN401 - any client's response
        if _authenticated(response):
            watch.saw()
            _report(stitch, lambda: read(response), watch, quiet=_error_status(response))

    return observe


class _Watch:
    """What the hooks reading one source (a header name, a callable) have seen in this
    process: how many responses they read, and whether the source was ever ``found`` (the
    header was there, or the callable returned an id)."""

    __slots__ = ("found", "reported", "seen", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen = 0
        self.found = False
        self.reported = False

    @classmethod
    def of(cls, source: str | Extractor) -> _Watch:
        """The one watch of ``source`` (hooks built with the same source share it)."""
        if callable(source):
            name = getattr(source, "__qualname__", None) or type(source).__name__
            key = f"the user id callable {name}"
        else:
            key = f"the header {source}"
        watch = _WATCHES.get(key)
        if watch is None:
            watch = _WATCHES.setdefault(key, cls(key))
        return watch

    def saw(self) -> None:
        """Count one response read (the first also arranges the report at exit)."""
        if not self.seen and not _AT_EXIT:
            _AT_EXIT.append(True)
            import atexit

            atexit.register(_report_at_exit)
        self.seen += 1  # a count, not a lock: a lost increment under threads changes nothing

    def unseen(self) -> str | None:
        """The line saying this source never named anyone, once; ``None`` otherwise."""
        if self.found or not self.seen or self.reported:
            return None
        self.reported = True
        seen = f"{self.seen} response{'s' if self.seen != 1 else ''}"
        if self.source.startswith("the header "):
            header = self.source.removeprefix("the header ")
            return (
                f"idstitch: the HTTP hook read {seen} and none carried the header {header}: "
                "is that the name your API sends the user id in?"
            )
        return (
            f"idstitch: {self.source} returned no user id for any of the {seen} the HTTP hook read"
        )


#: Every source a hook was built for, by what it reads: bounded by the host's code.
_WATCHES: dict[str, _Watch] = {}
_AT_EXIT: list[bool] = []


def _unseen_lines() -> list[str]:
    """The lines for each header or callable that read responses and never named a user.

    Each is given once per process (the dry run prints them at the sink's flush,
    :func:`_report_at_exit` at the end of the process). Never raises.
    """
    return [line for line in (watch.unseen() for watch in list(_WATCHES.values())) if line]


def _report_at_exit() -> None:
    """At the end of the process: what :func:`_unseen_lines` still has, printed to stderr in
    the ``IDSTITCH_DEBUG`` dry run, a debug message otherwise."""
    try:
        import os
        import sys

        from .runtime import is_truthy

        lines = _unseen_lines()
        dry_run = is_truthy(os.environ.get("IDSTITCH_DEBUG"))
        for line in lines:
            if dry_run:
                print(line, file=sys.stderr)
            else:
                _log_once(line, debug=True)
    except Exception:  # noqa: BLE001, S110 - R15: a closed stderr at exit changes nothing
        pass


_LOGGED: set[str] = set()


def _log_once(message: str, *, debug: bool = False) -> None:
    if message in _LOGGED:
        return
    _LOGGED.add(message)
    from idstitch.events._voice import debug as say_debug
    from idstitch.events._voice import warn

    (say_debug if debug else warn)("idstitch.adapters", "%s", message)


# ----------------------------------------------------------------- httpx


def _httpx_observer(
    stitch: IdentityStitch, source: str | Extractor, *, asynchronous: bool
) -> Callable[[Any], None]:
    """What an httpx response hook does; it never reads or waits on the body."""
    if not callable(source):
        return _observer(stitch, source)  # every header is there when the hook runs
    extract = user_id_from(source)
    watch = _Watch.of(source)

    def observe(response: Any) -> None:  # noqa: ANN401 - an httpx.Response
        if not _authenticated(response):
            return
        watch.saw()

        def read() -> str | None:
            try:
                user_id = extract(response)
            except Exception:  # noqa: BLE001 - e.g. ResponseNotRead: tried again on the body
                user_id = None
            if user_id is None:
                _when_body_read(response, asynchronous, lambda body: after_body(response, body))
            return user_id

        _report(stitch, read, watch)

    def after_body(response: Any, body: bytes) -> None:  # noqa: ANN401 - an httpx.Response
        read = lambda: extract(_read_copy(response, body))  # noqa: E731 - one expression
        _report(stitch, read, watch, quiet=_error_status(response))

    return observe


def _when_body_read(
    response: Any,  # noqa: ANN401 - an httpx.Response
    asynchronous: bool,
    then: Callable[[bytes], None],
) -> None:
    """Call ``then(raw body)`` once the host has read ``response``'s whole body, if it ever does.

    The response's stream is wrapped: chunks pass through to the host as they
    arrive, and a copy is kept until it passes 1 MiB.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > _BODY_LIMIT:
        _log_once(_TOO_LARGE, debug=True)
        return
    sync_tee, async_tee = _tee_types()
    tee = async_tee if asynchronous else sync_tee
    response.stream = tee(response.stream, _BodyCopy(then))


def _read_copy(response: Any, body: bytes) -> Any:  # noqa: ANN401 - httpx.Response both
    """A read ``httpx.Response`` like ``response`` holding ``body`` (decoded as the host's is)."""
    import httpx

    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=body,
        request=response.request,
        default_encoding=response.default_encoding,
    )


class _BodyCopy:
    """The raw body as it passes to the host, up to _BODY_LIMIT bytes, handed on at its end."""

    def __init__(self, then: Callable[[bytes], None]) -> None:
        self._then = then
        self._chunks: list[bytes] | None = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        if self._chunks is None:
            return
        self._size += len(chunk)
        if self._size > _BODY_LIMIT:
            self._chunks = None
            _log_once(_TOO_LARGE, debug=True)
        else:
            self._chunks.append(chunk)

    def end(self) -> None:
        if self._chunks is not None:
            self._then(b"".join(self._chunks))


_TEES: list[tuple[type[Any], type[Any]]] = []


def _tee_types() -> tuple[type[Any], type[Any]]:
    """The sync and async stream wrappers, defined on first use (they subclass httpx's)."""
    if _TEES:
        return _TEES[0]
    import httpx

    class SyncTee(httpx.SyncByteStream):
        def __init__(self, stream: httpx.SyncByteStream, copy: _BodyCopy) -> None:
            self._stream = stream
            self._copy = copy

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._stream:
                self._copy.add(chunk)
                yield chunk
            self._copy.end()

        def close(self) -> None:
            self._stream.close()

    class AsyncTee(httpx.AsyncByteStream):
        def __init__(self, stream: httpx.AsyncByteStream, copy: _BodyCopy) -> None:
            self._stream = stream
            self._copy = copy

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._stream:
                self._copy.add(chunk)
                yield chunk
            self._copy.end()

        async def aclose(self) -> None:
            await self._stream.aclose()

    _TEES.append((SyncTee, AsyncTee))
    return _TEES[0]


def httpx_hooks(
    stitch: IdentityStitch, user_id: str | Extractor = "X-User-Id"
) -> dict[str, list[Callable[[Any], None]]]:
    """``event_hooks`` for ``httpx.Client(event_hooks=...)``.

    httpx calls response hooks before the body is read, and the hook never
    reads it: a callable ``user_id`` that needs the body is called again on
    a copy once the host has read the whole body (module docstring).
    """
    return {"response": [_httpx_observer(stitch, user_id, asynchronous=False)]}


def httpx_async_hooks(
    stitch: IdentityStitch, user_id: str | Extractor = "X-User-Id"
) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """``event_hooks`` for ``httpx.AsyncClient(event_hooks=...)``.

    Like :func:`httpx_hooks`; the hook awaits nothing, and the id is handed
    to the service with no yield point before its decision is marked (rule R5).
    """
    observe = _httpx_observer(stitch, user_id, asynchronous=True)

    async def hook(response: Any) -> None:  # noqa: ANN401 - an httpx.Response
        observe(response)

    return {"response": [hook]}


# -------------------------------------------------------------- requests


def requests_hook(
    stitch: IdentityStitch, user_id: str | Extractor = "X-User-Id"
) -> Callable[..., None]:
    """A ``requests`` response hook: ``session.hooks["response"].append(requests_hook(stitch))``.

    requests calls it before the body is read. A callable ``user_id`` is not
    called for a ``stream=True`` request: reading the body there could wait
    forever on a stream that never ends.
    """
    observe = _observer(stitch, user_id)
    reads_body = callable(user_id)

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        if reads_body and kwargs.get("stream"):
            _log_once(_STREAMED, debug=True)
            return
        observe(response)

    return hook


def __getattr__(name: str) -> object:
    if name == "Extractor":  # the alias needs typing: built only when asked for at run time
        from collections.abc import Callable
        from typing import Any

        alias = Callable[[Any], "str | None"]
        globals()["Extractor"] = alias
        return alias
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
