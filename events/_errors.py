"""The error family of idstitch.

Every error idstitch raises on purpose is an :class:`IdentityError`, a
:class:`ValueError`: the input (a user id, a log line) is what was wrong.
I/O faults are never raised out of the identity service (rule R15); the
store reports them as :class:`LogDamagedError` when the data is at fault.
"""

from __future__ import annotations

__all__ = [
    "IdentityError",
    "IllegalUserIdError",
    "LogDamagedError",
    "NewerFormatError",
    "TransitionError",
]


class IdentityError(ValueError):
    """Root of idstitch's errors."""


class IllegalUserIdError(IdentityError):
    """A user id that PostHog would refuse or mis-merge (rule R13).

    Nothing was appended and no state changed.
    """

    def __init__(self, user_id: object, reason: str) -> None:
        self.user_id = user_id
        self.reason = reason
        try:
            shown = repr(user_id)
        except ValueError:  # an integer with more digits than Python will write out
            shown = f"<an integer of {user_id.bit_length()} bits>"  # type: ignore[attr-defined]
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(
            f"illegal user id {shown}: {reason} (rule R13); "
            "pass the authenticated user's stable id (for example their UUID)"
        )


class LogDamagedError(IdentityError):
    """A log line that cannot be trusted: the record at ``seq`` and byte ``offset``.

    ``cause`` is a short machine-readable tag (``torn-tail``, ``hash-chain``,
    ``seq-gap``, ``bad-json``, ``unknown-kind``, ``bad-field``, ``newer-version``);
    ``detail`` says what was found. Records before it are intact; nothing
    was rewritten.
    """

    def __init__(self, *, seq: int, offset: int, cause: str, detail: str) -> None:
        self.seq = seq
        self.offset = offset
        self.cause = cause
        self.detail = detail
        super().__init__(f"record seq {seq} at byte {offset}: {cause}: {detail}")


class NewerFormatError(LogDamagedError):
    """A record written by a newer idstitch (rule L8): read up to it, never rewritten."""


class TransitionError(IdentityError):
    """An event the identity machine does not allow in the current state.

    Raised (or, in replay, reported) with the ``seq`` of the record, the
    ``state`` and the ``event``; the state is left as it was before it.
    """

    def __init__(self, *, seq: int, state: str, event: str, guard: str | None) -> None:
        self.seq = seq
        self.state = state
        self.event = event
        self.guard = guard
        shown = f"{event} [{guard}]" if guard else event
        super().__init__(f"record seq {seq}: {shown} is not a transition from state {state}")
