"""The checks behind ``idstitch verify``: invariants L1-L9 of the log format, by id.

A replay trusts the transition table; verify does not trust the writer.
It is meant for logs the library would never write (edited by hand, or
written by another implementation), so it keeps its own books instead of
relying on the fold's:

* structural damage found by the checked reader (a broken hash, a gap in
  ``seq``, a torn or unparsable line) is **L1**, a format version this
  build cannot read (newer, never one, not an integer) **L8**; both stop
  the check, because nothing after them can be trusted;
* every other invariant is checked record by record and the check goes
  on past a violation, so one run lists them all;
* a record the machine's transition table does not allow in the state
  the log has reached is reported as **T** (an addition to the spec's
  L1-L8, like **L9**: the log cannot be replayed past it) and skipped.

**L9** (an addition for the ``alias_dropped`` kind of format 3): a drop
names an alias that stands in verify's own books, made for that device and
user (or carried in by a ``heal`` or an ``import``) and not undone or
dropped since. A drop takes that alias off the books, so the device may be
aliased once more without breaking L2 or L4; a drop's device is the
alias's, not necessarily the one in force, so L6 leaves it to L9.

Memory grows with the number of distinct ids in the log (L5 needs them
all: device ids and user ids alike), never with the number of records.
"""

from __future__ import annotations

from idstitch.events import FORMAT_VERSION, user_id_problem
from idstitch.events._frozen import Frozen, freeze
from idstitch.events._kinds import KIND_VERSION
from idstitch.machine import USER_EVENTS, TransitionError, step

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import Any, Final

    from idstitch.events import LogDamagedError, Record
    from idstitch.machine import Identity

__all__ = ["INVARIANTS", "Verifier", "Violation", "damage_violation"]

#: Each id's promise in plain words, one line each: what every report says about an id
#: (verify's rows and summary, text and JSON) comes from here. docs/audit.md maps each
#: one to the spec's wording and the rule it protects.
INVARIANTS: Final[dict[str, str]] = {
    "L1": "records are numbered 1, 2, 3... with no gap, and each is chained to the one before",
    "L2": "no device has two aliases standing at once (PostHog would merge it twice)",
    "L3": "no alias is sent from CI, a container or another throwaway run",
    "L4": "a device linked to a user is never linked again, to anyone",
    "L5": "a logout moves to a brand-new device id, never one seen before",
    "L6": "every record is made on the device in use (the new one after a logout)",
    "L7": "every user id is one PostHog accepts (not empty, not a placeholder like null)",
    "L8": "every record is in a format version this idstitch can read",
    "L9": "every alias the sender gave up on was made, and still stood",
    "T": "every record is a step the identity state machine allows from where the log stood",
}

_CAUSES: Final = {
    "torn-tail": "torn tail",
    "hash-chain": "broken hash chain",
    "seq-gap": "gap in seq",
    "bad-json": "not a JSON record",
    "unknown-kind": "unknown kind",
    "bad-field": "bad field",
    "newer-version": "newer version",
}


def cause_name(cause: str) -> str:
    """A damage cause as a reader says it (``hash-chain`` -> ``broken hash chain``)."""
    return _CAUSES.get(cause, cause)


class Violation(Frozen):
    """One broken invariant: its id, the record's seq and byte offset, and why."""

    __slots__ = ("id", "message", "offset", "seq")
    id: str
    seq: int
    offset: int
    message: str

    def __init__(self, id: str, seq: int, offset: int, message: str) -> None:
        freeze(self, locals())

    def as_json(self) -> dict[str, Any]:
        """The violation as ``verify --json`` prints it: ``promise`` is the id's words."""
        return {
            "type": "violation",
            "id": self.id,
            "promise": INVARIANTS[self.id],
            "seq": self.seq,
            "offset": self.offset,
            "message": self.message,
        }


def damage_violation(error: LogDamagedError, line: bytes) -> Violation:
    """The violation a reader's damage is: L8 for a version this build cannot read, else L1.

    The reader's cause decides: ``newer-version`` is L8, and so is a ``bad-field``
    whose bad field is ``v`` itself (``line``, the damaged line, tells that from
    other bad fields): a version this build does not read, or one too old for
    the record's kind (a ``heal`` claiming version 1). Everything else, a torn
    tail and any line that is not a JSON record included, is L1.
    """
    where = f"at byte {error.offset}: "
    if error.cause == "newer-version":
        return Violation("L8", error.seq, error.offset, where + error.detail)
    if error.cause == "bad-field":
        detail = _version_problem(line)
        if detail is not None:
            return Violation("L8", error.seq, error.offset, where + detail)
    return Violation(
        "L1", error.seq, error.offset, f"{where}{cause_name(error.cause)}: {error.detail}"
    )


def _version_problem(line: bytes) -> str | None:
    """What is wrong with the ``v`` that ``line`` holds, or ``None`` when it can be read.

    The reader checks ``v`` (against the versions it reads, then against the
    record's kind) before any other field, so a ``bad-field`` line whose ``v``
    is wrong was refused for its ``v``. A line without ``v`` is mis-shaped
    rather than of another version: ``None``.
    """
    import orjson  # only for a damaged line: a clean verify never loads it

    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict or "v" not in value:
        return None
    version = value["v"]
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        shown = _show(version)
        return f"format version {shown} is not one this build reads (1 to {FORMAT_VERSION})"
    kind = value.get("kind")
    if not isinstance(kind, str) or version >= KIND_VERSION.get(kind, version):
        return None
    article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
    return (
        f"format version {version} cannot hold {article} {kind} record "
        f"(the kind exists from version {KIND_VERSION[kind]} on)"
    )


class _Link:
    """An alias of a device: sent by this log's record ``seq`` (``carried`` is ``None``), or
    sent before it and carried in by an ``import`` or a ``heal`` (``carried`` says how)."""

    __slots__ = ("carried", "seq", "user")

    def __init__(self, user: str, seq: int, carried: str | None = None) -> None:
        self.user = user
        self.seq = seq
        self.carried = carried


class Verifier:
    """Feed :meth:`check` every good record in order, then call :meth:`finish`."""

    __slots__ = (
        "_held",
        "_last_alias",
        "_pending",
        "device",
        "identity",
        "links",
        "records",
        "seen",
    )

    def __init__(self) -> None:
        self.identity: Identity | None = None
        self.device: str | None = None
        self.seen: set[str] = set()
        self.links: dict[str, list[_Link]] = {}
        self.records = 0
        self._last_alias: str | None = None
        self._pending: Violation | None = None
        self._held: list[Violation] = []

    def check(self, record: Record, offset: int) -> list[Violation]:
        """The violations of the records before ``record``, now that they are settled.

        A record's own violations are held until the next record is seen,
        because an ``enqueue_failure`` right after an alias undoes it (L2),
        unless the transition table refuses it: then it undoes nothing (T).
        """
        refused = self._transition(record, offset)
        undoing = (
            record["kind"] == "enqueue_failure" and self._last_alias is not None and refused is None
        )
        settled = self._settle(undone=undoing)
        self._held = self._examine(record, offset, undoing, skipped=refused is not None)
        if refused is not None:
            self._held.append(refused)
        return settled

    def finish(self) -> list[Violation]:
        """The violations of the last record."""
        settled = self._settle(undone=False)
        self._held = []
        return settled

    def _settle(self, *, undone: bool) -> list[Violation]:
        held = self._held
        if self._pending is not None and not undone:
            held.append(self._pending)
        self._pending = None
        return sorted(held, key=lambda v: (v.seq, _ORDER[v.id]))

    def _examine(
        self, record: Record, offset: int, undoing: bool, *, skipped: bool
    ) -> list[Violation]:
        found: list[Violation] = []
        kind = record["kind"]
        seq = record["seq"]
        self.records += 1

        def flag(rule: str, message: str) -> None:
            found.append(Violation(rule, seq, offset, message))

        device = record["device_id"]
        if kind != "alias_dropped" and self.device is not None and device != self.device:
            flag("L6", f"{kind} names device {device}, but the device in force is {self.device}")
        if kind == "logout":
            new = record["new_device_id"]
            if new in self.seen or new == device:
                flag("L5", f"logout rotates to device {new}, which the log had already seen")
        user = record.get("user_id")
        for what, named in _users_named(record):
            problem = user_id_problem(named)
            if problem is not None:
                flag("L7", f"{what} {_show(named)} is illegal: {problem}")
        aliasing = kind in USER_EVENTS and record["alias"]
        if aliasing:
            if record["runtime"] == "ephemeral":
                flag("L3", f"{kind} aliased {device} to {_show(user)} in an ephemeral runtime")
            self._alias(found, record, offset)
        elif undoing:
            assert self._last_alias is not None
            self.links[self._last_alias].pop()
        elif kind == "import" and record["aliased"] and user is not None:
            self.links[device] = [_Link(user, seq, "adopted as aliased to")]
        elif kind == "heal" and record["linked_user"] is not None:
            carried = "carried over a heal as aliased to"
            self.links[device] = [_Link(record["linked_user"], seq, carried)]
        elif kind == "alias_dropped":
            self._drop(found, record, offset, skipped=skipped)
        self._last_alias = device if aliasing else None
        self._track_ids(record)
        return found

    def _alias(self, found: list[Violation], record: Record, offset: int) -> None:
        device, user, seq = record["device_id"], record["user_id"], record["seq"]
        links = self.links.setdefault(device, [])
        if links:
            first = links[0]
            how = first.carried or "aliased to"
            found.append(
                Violation(
                    "L4",
                    seq,
                    offset,
                    f"{record['kind']} aliases device {device} to {_show(user)}, but it was "
                    f"already {how} {_show(first.user)} at seq {first.seq}",
                )
            )
        links.append(_Link(user, seq))
        standing = [link.seq for link in links if link.carried is None]
        if len(standing) > 1:
            seqs = ", ".join(str(s) for s in standing)
            self._pending = Violation(
                "L2",
                seq,
                offset,
                f"device {device} now has {len(standing)} standing aliases (seq {seqs}); "
                "PostHog merges on every one",
            )

    def _drop(self, found: list[Violation], record: Record, offset: int, *, skipped: bool) -> None:
        """Take the alias an ``alias_dropped`` names off the books (L9 when none stands);
        ``skipped``: the table refused the record (T), so it takes nothing off."""
        device, user = record["device_id"], record["user_id"]
        links = self.links.get(device, [])
        named = [index for index, link in enumerate(links) if link.user == user]
        if not named:
            stands = f"; the alias that stands is to {_show(links[-1].user)}" if links else ""
            found.append(
                Violation(
                    "L9",
                    record["seq"],
                    offset,
                    f"alias_dropped names an alias of device {device} to {_show(user)}, but "
                    f"none stands (never made, or already undone or dropped){stands}",
                )
            )
        elif not skipped:
            del links[named[-1]]

    def _transition(self, record: Record, offset: int) -> Violation | None:
        """Step :attr:`identity` by ``record``; the T violation when the table refuses it."""
        try:
            _, self.identity, _ = step(self.identity, record)
        except TransitionError as error:
            shown = f"{error.event} [{error.guard}]" if error.guard else error.event
            return Violation(
                "T",
                record["seq"],
                offset,
                f"{shown} is not a transition from state {error.state}; the record is skipped",
            )
        return None

    def _track_ids(self, record: Record) -> None:
        """Remember every id the record names (L5), and the device in force after it (L6)."""
        kind = record["kind"]
        device = record["device_id"]
        self.seen.add(device)
        self.seen.update(named for _, named in _users_named(record))
        if kind == "logout":
            self.seen.add(record["new_device_id"])
            self.device = record["new_device_id"]
        elif self.device is None:
            self.device = device


_ORDER: Final = {rule: index for index, rule in enumerate(INVARIANTS)}


def _users_named(record: Record) -> list[tuple[str, Any]]:
    """(what, id) for each user id ``record`` names: its user, and whom a heal's device is
    aliased to."""
    named = [("user id", record.get("user_id")), ("linked user", record.get("linked_user"))]
    return [(what, value) for what, value in named if value is not None]


def _show(user: object) -> str:
    text = repr(user)
    return text if len(text) <= 60 else text[:57] + "..."
