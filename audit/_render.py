"""How the audit tool prints: aligned plain-text columns, or one JSON object per line.

Rows are written as they come (a log of any size streams through), in
fixed-width columns that never wrap or cut an id, so piped output is
stable and complete. On a terminal the same text is coloured by ``rich``
(the ``idstitch[audit]`` extra); elsewhere, or when ``rich`` is not
installed, it is written plain, and ``rich`` is not even imported.
``--json`` prints one object per line, each with a ``type`` field
(``orjson`` is imported for the first one).
"""

from __future__ import annotations

from ._verify import INVARIANTS, cause_name

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Final, TextIO

    from idstitch.events import LogDamagedError, TransitionError
    from idstitch.machine import Identity

    from ._timeline import Step
    from ._verify import Violation

__all__ = [
    "Output",
    "Part",
    "damage_line",
    "identity_block",
    "identity_json",
    "printable",
    "promise_lines",
    "timeline_header",
    "timeline_line",
    "timeline_row",
    "transition_line",
    "violation_line",
]

#: A piece of a line: plain text, or ``(text, rich style)``.
Part = str | tuple[str, str]

STATE_STYLES: Final = {
    "initial": "dim",
    "anonymous": "bright_black",
    "stamped": "yellow",
    "aliased": "green",
    "reset": "cyan",
}
ALIAS_STYLES: Final = {
    "sent": "bold magenta",
    "undone": "red",
    "adopted": "magenta",
    "carried": "magenta",
    "dropped": "red",
}

_SEQ: Final = 6
_AT: Final = 27
_KIND: Final = 15
_STATE: Final = len("anonymous → anonymous")
_ID: Final = 36  # a UUID; longer ids push the next column right rather than being cut


class Output:
    """Where a command prints: text lines (coloured on a terminal) or JSON lines.

    ``fields`` are added to every JSON object (the demo tags its objects
    with their scenario).
    """

    def __init__(
        self, stream: TextIO, *, as_json: bool, fields: Mapping[str, Any] | None = None
    ) -> None:
        self.stream = stream
        self.as_json = as_json
        self._fields = dict(fields or {})
        self._console: Any = None
        if not as_json and _is_terminal(stream):
            self._console = _console(stream)

    @property
    def styled(self) -> bool:
        """Whether text goes to a terminal through ``rich`` (else it is written plain)."""
        return self._console is not None

    def plain(self, line: str) -> None:
        """One unstyled line (the fast path for long timelines), its control characters escaped."""
        self.stream.write((line if line.isprintable() else printable(line)) + "\n")

    def json(self, value: Mapping[str, Any]) -> None:
        """One JSON object on its own line (plus the ``fields`` this output was made with)."""
        import orjson

        if self._fields:
            value = {**value, **self._fields}
        self.stream.write(orjson.dumps(value).decode() + "\n")

    def text(self, *parts: Part) -> None:
        """One line of text from plain and styled parts, their control characters escaped."""
        if self._console is None:
            self.plain("".join(p if isinstance(p, str) else p[0] for p in parts))
            return
        from rich.text import Text

        self._console.print(
            Text.assemble(
                *(printable(p) if isinstance(p, str) else (printable(p[0]), p[1]) for p in parts)
            )
        )

    def lines(self, lines: Iterable[list[Part]]) -> None:
        """Several lines of parts."""
        for parts in lines:
            self.text(*parts)


def printable(text: str) -> str:
    """``text`` with each character that is not printable shown as its escape (``\\x1b``).

    Ids in a log are whatever was written there: a newline would forge a row,
    an escape sequence would drive the reader's terminal, a lone surrogate
    would not encode. Text output shows them, escaped, and never obeys them.
    A path's byte that is not UTF-8 (decoded by Python as a surrogate) shows
    as that byte, ``\\xe9``.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (a path's, surrogateescape'd)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _console(stream: TextIO) -> Any:  # noqa: ANN401 - a rich Console, when rich is installed
    """A ``rich`` console writing to ``stream``; ``None`` without ``rich`` (plain text then)."""
    try:
        from rich.console import Console
    except ImportError:  # installed without the [audit] extra
        return None
    return Console(file=stream, highlight=False, soft_wrap=True, emoji=False, markup=False)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _state(name: str, width: int = 0) -> tuple[str, str]:
    return (name.ljust(width), STATE_STYLES.get(name, ""))


def timeline_header() -> list[Part]:
    """The column names of the timeline."""
    cells = (
        f"{'seq':>{_SEQ}}",
        f"{'at':<{_AT}}",
        f"{'kind':<{_KIND}}",
        f"{'state':<{_STATE}}",
        f"{'device':<{_ID}}",
        f"{'distinct id':<{_ID}}",
        "alias",
    )
    return [("  ".join(cells), "bold")]


def timeline_row(step: Step) -> list[Part]:
    """One record of the timeline."""
    pad = _STATE - len(step.before) - len(step.after) - 3
    parts: list[Part] = [
        f"{step.seq:>{_SEQ}}  {step.at:<{_AT}}  {step.kind:<{_KIND}}  ",
        _state(step.before),
        " → ",
        _state(step.after),
        " " * max(pad, 0),
        f"  {step.device_id:<{_ID}}  {step.distinct_id:<{_ID}}",
    ]
    if step.alias is not None:
        parts += ["  ", (step.alias, ALIAS_STYLES[step.alias])]
    note = _note(step)
    if note is not None:
        parts += ["  ", (note, "italic")]
    return _rstrip(parts)


def timeline_line(step: Step) -> str:
    """One record of the timeline as plain text: :func:`timeline_row` without styles."""
    state = f"{step.before} → {step.after}"
    line = (
        f"{step.seq:>{_SEQ}}  {step.at:<{_AT}}  {step.kind:<{_KIND}}  {state:<{_STATE}}"
        f"  {step.device_id:<{_ID}}  {step.distinct_id:<{_ID}}"
    )
    notes = [note for note in (step.alias, _note(step)) if note is not None]
    return "  ".join([line, *notes]) if notes else line.rstrip()


def _note(step: Step) -> str | None:
    """What a heal row says about the damaged log it kept aside, a drop's row about why, and
    a consent's row about the user's choice."""
    if step.kept is not None:
        return f"kept {step.kept}"
    if step.reason is not None:
        return f"({step.reason})"
    if step.telemetry is not None:
        return f"telemetry {step.telemetry}"
    return None


def _rstrip(parts: list[Part]) -> list[Part]:
    last = parts[-1]
    if isinstance(last, str):
        parts[-1] = last.rstrip()
    return parts


def identity_block(
    title: str, identity: Identity | None, *, extra: Iterable[tuple[str, str]] = ()
) -> list[list[Part]]:
    """A titled key/value block describing ``identity`` (``None``: an empty log)."""
    lines: list[list[Part]] = [[(title, "bold")]]
    if identity is None:
        rows: list[tuple[str, Part]] = [("state", "none: the log has no records")]
    else:
        rows = [
            ("state", _state(identity.state.value)),
            ("device id", identity.device_id),
            ("user id", identity.user_id if identity.user_id is not None else "none"),
            ("distinct id", identity.distinct_id),
            ("linked to", identity.linked_user if identity.linked_user is not None else "nobody"),
            ("last seq", str(identity.seq)),
        ]
    rows += list(extra)
    lines += [[f"  {key:<13}", value] for key, value in rows]
    return lines


def identity_json(identity: Identity | None) -> dict[str, Any]:
    """The identity fields every ``--json`` identity object carries."""
    if identity is None:
        return {
            "state": None,
            "device_id": None,
            "user_id": None,
            "distinct_id": None,
            "linked_user": None,
            "last_seq": 0,
        }
    from idstitch.service._doctor import identity_fields

    return identity_fields(identity)


def damage_line(error: LogDamagedError, good: int) -> list[Part]:
    """The one line that says where a log is damaged and why."""
    return [
        ("damaged:", "bold red"),
        (
            f" seq {error.seq} at byte {error.offset}: {cause_name(error.cause)}: "
            f"{error.detail}. {_before(good, 'intact')}; nothing was rewritten."
        ),
    ]


def transition_line(error: TransitionError, offset: int, good: int) -> list[Part]:
    """The one line that says which record the transition table refused."""
    shown = f"{error.event} [{error.guard}]" if error.guard else error.event
    return [
        ("stopped:", "bold red"),
        (
            f" seq {error.seq} at byte {offset}: impossible transition: {shown} is not a "
            f"transition from state {error.state}. {_before(good, 'replayed cleanly')}."
        ),
    ]


def _before(count: int, how: str) -> str:
    if count == 0:
        return "It is the first record"
    if count == 1:
        return f"The 1 record before it {'is' if how == 'intact' else 'was'} {how}"
    return f"The {count} records before it {'are' if how == 'intact' else 'were'} {how}"


def violation_line(violation: Violation) -> list[Part]:
    """One violation: its id, its seq, the promise it broke in words, then what happened."""
    return [
        (f"{violation.id:<3}", "bold red"),
        f" seq {violation.seq} broke ",
        (f'"{INVARIANTS[violation.id]}"', "bold"),
        f": {violation.message}",
    ]


def promise_lines(ids: Iterable[str]) -> list[list[Part]]:
    """Each id with its promise in words, indented under a summary."""
    return [[f"  {rule:<3} {INVARIANTS[rule]}"] for rule in ids]
