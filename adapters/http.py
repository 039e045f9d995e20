"""HTTP client hooks: learn the authenticated user from your API's responses.

One :class:`IdentityStitch` per process, shared by every client: the hooks
only report what they see (``observe_authenticated_response``); the service
decides, so several clients, threads and tasks alias at most once.

The hooks import neither ``httpx`` nor ``requests``; they read a response's
``status_code`` and ``headers``. Nothing a hook does raises into your
request: an illegal id in the header is logged once and ignored.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any, TypeAlias

    from idstitch.machine import IdentityStitch

    #: Reads the user id from a response; ``None`` when the response names nobody.
    Extractor: TypeAlias = Callable[[Any], "str | None"]

__all__ = ["Extractor", "httpx_async_hooks", "httpx_hooks", "requests_hook", "user_id_from"]


def user_id_from(source: str | Extractor) -> Extractor:
    """An extractor from a header name (``"X-User-Id"``) or a callable returning the id.

    Only successful (2xx) responses are read: an error page is not an
    authenticated answer.
    """
    if callable(source):
        read = source
    else:
        header = source

        def read(response: Any) -> str | None:  # noqa: ANN401 - any client's response
            value = response.headers.get(header)
            return value or None

    def extract(response: Any) -> str | None:  # noqa: ANN401 - any client's response
        status = getattr(response, "status_code", 200)
        if not 200 <= int(status) < 300:
            return None
        return read(response)

    return extract


def _observer(stitch: IdentityStitch, source: str | Extractor) -> Callable[[Any], None]:
    extract = user_id_from(source)

    def observe(response: Any) -> None:  # noqa: ANN401 - any client's response
        from idstitch.events import IllegalUserIdError

        try:
            user_id = extract(response)
            if user_id is not None:
                stitch.observe_authenticated_response(user_id)
        except IllegalUserIdError as exc:
            _log_once(f"idstitch: ignoring the user id in a response: {exc.reason}")
        except Exception as exc:  # noqa: BLE001 - R15: a hook never breaks the request
            _log_once(f"idstitch: response hook failed: {type(exc).__name__}")

    return observe


_LOGGED: set[str] = set()


def _log_once(message: str) -> None:
    if message in _LOGGED:
        return
    _LOGGED.add(message)
    import logging

    logging.getLogger("idstitch").warning(message)


def httpx_hooks(
    stitch: IdentityStitch, user_id: str | Extractor = "X-User-Id"
) -> dict[str, list[Callable[[Any], None]]]:
    """``event_hooks`` for ``httpx.Client(event_hooks=...)``.

    httpx calls response hooks before the body is read; with a callable
    ``user_id`` (which may read the body) the hook reads it first.
    """
    observe = _observer(stitch, user_id)
    if not callable(user_id):
        return {"response": [observe]}

    def hook(response: Any) -> None:  # noqa: ANN401 - an httpx.Response
        if 200 <= response.status_code < 300:
            response.read()
        observe(response)

    return {"response": [hook]}


def httpx_async_hooks(
    stitch: IdentityStitch, user_id: str | Extractor = "X-User-Id"
) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """``event_hooks`` for ``httpx.AsyncClient(event_hooks=...)``.

    The body is read first (awaited) when ``user_id`` is a callable; then the
    decision is taken and marked with no yield point in between (rule R5).
    """
    observe = _observer(stitch, user_id)
    reads_body = callable(user_id)

    async def hook(response: Any) -> None:  # noqa: ANN401 - an httpx.Response
        if reads_body and 200 <= response.status_code < 300:
            await response.aread()
        observe(response)

    return {"response": [hook]}


def requests_hook(
    stitch: IdentityStitch, user_id: str | Extractor = "X-User-Id"
) -> Callable[..., None]:
    """A ``requests`` response hook: ``session.hooks["response"].append(requests_hook(stitch))``."""
    observe = _observer(stitch, user_id)

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        observe(response)

    return hook
