"""The delivery layer's word that an alias was finally dropped, recorded in the identity log.

A detached sender (another process) may give up on a ``$create_alias``:
PostHog refused it for good, or it expired undelivered. Rule R9 then says
the device counts as not aliased, so that a later authenticated response or
login aliases it again, once. :func:`record_dropped_alias` writes that
``alias_dropped`` record into a state dir, through the same service and
write path as every other change.
"""

from __future__ import annotations

import os

from idstitch.events._voice import debug
from idstitch.store._names import LOG_NAME

__all__ = ["record_dropped_alias"]

_VOICE = "idstitch.service"


def record_dropped_alias(state_dir: str, *, device_id: str, user_id: str, reason: str) -> bool:
    """Record in ``state_dir``'s identity log that the alias of ``device_id`` to ``user_id``
    was finally dropped (refused for good, or expired) and never reached PostHog (R9).

    The state dir is opened as a persistent run opens it (an opt-out in the
    environment does not apply: the sender that calls this runs with one),
    its file lock taken (waiting at most ``LOCK_WAIT``), what other
    processes appended folded in, and the drop decided against every alias
    the whole log holds. ``reason`` says why in a few words (``"refused:
    HTTP 400"``, ``"expired"``); control characters become spaces and a
    reason longer than the record allows is cut.

    Returns ``True`` when the record was appended (and the snapshot updated):
    the device counts as not aliased from now on. ``False`` when there was
    nothing to record (the log never made that alias, or it was already
    undone or dropped), or when it could not be recorded (no log in the dir,
    a dir this user may not use, a busy lock, a log of a newer format, a
    disk fault): then nothing was appended. Never raises (R15).
    """
    try:
        if not (type(device_id) is str and type(user_id) is str and type(reason) is str):
            return False
        folder = os.fspath(state_dir)
        if not os.path.lexists(os.path.join(folder, LOG_NAME)):
            return False  # no log: it never made that alias (and opening would start one)
        from ._runtime import Runtime
        from ._stitch import IdentityStitch

        stitch = IdentityStitch.open(state_dir=folder, runtime=Runtime.PERSISTENT, env={})
        return stitch._drop_alias(device_id=device_id, user_id=user_id, reason=_short(reason))
    except Exception as exc:  # noqa: BLE001 - R15: the sender is told by the return value
        debug(_VOICE, "idstitch: could not record the dropped alias in %s (%r)", state_dir, exc)
        return False


def _short(reason: str) -> str:
    """``reason`` as an ``alias_dropped`` record holds it: one line, not blank, not too long."""
    from idstitch.events._kinds import MAX_REASON_LENGTH

    text = "".join(" " if _control(char) else char for char in reason).strip()
    if len(text) > MAX_REASON_LENGTH:
        text = text[: MAX_REASON_LENGTH - 3].rstrip() + "..."
    return text or "unknown"


def _control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F
