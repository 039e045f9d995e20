"""The user's telemetry choice and what it adds up to: :class:`TelemetryStatus`.

Precedence, highest first: an environment opt-out (``DO_NOT_TRACK``, or one
of the host's ``opt_out_vars``), then the choice recorded in the identity log
(a ``consent`` record: ``enabled`` or ``disabled``), then the default
(enabled). The service works the status out with :func:`telemetry_status`;
this module reads no file and imports nothing on a host's start.
"""

from __future__ import annotations

from idstitch.events._frozen import Frozen, freeze

__all__ = ["TelemetryStatus", "telemetry_status"]


class TelemetryStatus(Frozen):
    """Whether telemetry is on, and why: what ``mycli telemetry status`` prints.

    ``enabled``: whether this process sends events. ``decided_by``:
    ``"DO_NOT_TRACK"`` or the host's variable (set in the environment),
    ``"consent"`` (the user's recorded choice) or ``"default"``.
    ``consent``: the choice recorded (``"enabled"``, ``"disabled"``; ``None``:
    never recorded) and ``recorded_at`` its record's time (RFC 3339, UTC).
    ``recorded``: whether that choice is durable in the state dir (in the
    log, or in a pending file the next run appends); ``False`` when it holds
    for this process only (no usable state dir, a disk that refused it).
    ``app``: the host CLI's name, for :meth:`describe`'s hint.
    """

    __slots__ = ("app", "consent", "decided_by", "enabled", "recorded", "recorded_at")
    enabled: bool
    decided_by: str
    consent: str | None
    recorded_at: str | None
    recorded: bool
    app: str | None

    def __init__(
        self,
        *,
        enabled: bool,
        decided_by: str,
        consent: str | None,
        recorded_at: str | None,
        recorded: bool,
        app: str | None = None,
    ) -> None:
        freeze(self, locals())

    def describe(self, command: str | None = None) -> str:
        """One or two plain sentences for people: whether telemetry is on, and why.

        ``command`` is the host's telemetry command (``"mycli telemetry"``), named in
        the hint; by default the one of :attr:`app`, if known.
        """
        if command is None and self.app:
            command = f"{self.app} telemetry"
        date = (self.recorded_at or "")[:10]
        if self.decided_by not in ("consent", "default"):
            text = (
                f"Telemetry is disabled: {self.decided_by} is set in the environment, "
                "which wins over any choice recorded"
            )
            if self.consent is not None:
                text += f" (you {self.consent} it on {date})"
            text += "."
        elif self.consent == "disabled":
            text = (
                f"Telemetry is disabled: you turned it off on {date} "
                f"({_hint(command, 'enable')} turns it back on)."
            )
        elif self.consent == "enabled":
            text = (
                f"Telemetry is enabled: you turned it on on {date} "
                f"({_hint(command, 'disable')} turns it off)."
            )
        else:
            text = (
                "Telemetry is enabled (the default; no choice was recorded): "
                f"{_hint(command, 'disable')} or DO_NOT_TRACK=1 turns it off."
            )
        if self.consent is not None and not self.recorded:
            text += " Your choice could not be saved, so it holds for this run only."
        return text


def _hint(command: str | None, action: str) -> str:
    return f"{command} {action}" if command else f"the telemetry {action} command"


def telemetry_status(
    *,
    opted_out_by: str | None,
    consent: str | None,
    recorded_at: str | None,
    recorded: bool,
    app: str | None = None,
) -> TelemetryStatus:
    """The status the precedence gives: ``opted_out_by`` (the environment variable that
    opts out, if one does) > ``consent`` (recorded) > the default (enabled)."""
    if opted_out_by is not None:
        enabled, decided_by = False, opted_out_by
    elif consent is not None:
        enabled, decided_by = consent == "enabled", "consent"
    else:
        enabled, decided_by = True, "default"
    return TelemetryStatus(
        enabled=enabled,
        decided_by=decided_by,
        consent=consent,
        recorded_at=recorded_at,
        recorded=recorded and consent is not None,
        app=app,
    )
