"""What to believe: pure verdicts on a snapshot, a log's end and a damaged log.

Nothing here opens a file, reads a clock or draws a random id: each
function takes bytes and values and returns a verdict, so every rule of
trust is testable on its own. The service does the I/O around them.

The rules (log-format.md, "Healing"):

* A snapshot is a cache anyone can edit. It is believed when it names the
  log's last record (the steady start), and when healing, only if it is
  consistent with the records that can be checked.
* A heal never forgets that a device was aliased (R3), and never brings
  back a user that may have logged out (R16). When the bytes after the
  last trusted record could hold either, a fresh device is minted and no
  user is carried over: the next authenticated response stamps the user
  again, and the fresh device can be aliased once like any new one.
"""

from __future__ import annotations

from idstitch.events._ids import check_device_id, user_id_problem
from idstitch.machine._fold import Identity
from idstitch.store._line import names_record

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from idstitch.events import Record, RecordReader
    from idstitch.store import SnapshotRead

__all__ = [
    "Folded",
    "HealPlan",
    "fold_noting",
    "foreign_identity",
    "heal_plan",
    "log_damage",
    "lost_records",
    "names_line",
    "snapshot_identity",
    "snapshot_offset",
]

_HEX = frozenset("0123456789abcdef")


class Folded:
    """A whole log's fold (its identity and where it stopped, ``error``) and the byte offset
    just past its last good record."""

    __slots__ = ("checkpoint_offset", "error", "identity")

    def __init__(self, identity: Identity | None, error: Exception | None, offset: int) -> None:
        self.identity = identity
        self.error = error
        self.checkpoint_offset = offset


def fold_noting(reader: RecordReader) -> tuple[Folded, set[str], set[str]]:
    """Fold a whole log from ``reader``, noting every record's hash and every device id it
    names (the facts a heal plan weighs). A log that does not exist folds as empty."""
    from idstitch.machine._fold import fold

    hashes: set[str] = set()
    devices: set[str] = set()

    def noting(records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            hashes.add(record["h"])
            devices.update(record[k] for k in ("device_id", "new_device_id") if k in record)
            yield record

    try:
        result = fold(noting(reader))
    except FileNotFoundError:
        result = fold(())
    return Folded(result.identity, result.error, reader.checkpoint.offset), hashes, devices


def snapshot_identity(snapshot: SnapshotRead) -> Identity | None:
    """The identity an ``ok`` snapshot holds, if a log could have written it; else ``None``.

    ``Identity.from_dict`` checks the types; this checks the values too, so
    that a damaged or hostile ``telemetry.json`` never puts an illegal,
    blank or oversized id on the wire (R13).
    """
    if snapshot.status != "ok":
        return None
    identity = Identity.from_dict(snapshot.data)
    if identity is None or len(identity.h) != 32 or not _HEX.issuperset(identity.h):
        return None
    users = [identity.user_id, identity.linked_user]
    if identity.undo is not None:
        users += identity.undo[1:]
    if any(user is not None and user_id_problem(user) is not None for user in users):
        return None
    try:
        check_device_id(identity.device_id)
    except ValueError:
        return None
    return identity


def snapshot_offset(snapshot: SnapshotRead) -> int:
    """The log size the snapshot says it saw (0 when it says nothing usable)."""
    offset = snapshot.data.get("offset") if snapshot.status == "ok" else None
    return offset if type(offset) is int and offset > 0 else 0


def log_damage(
    *,
    error: Exception | None,
    held: Identity | None,
    hashes: set[str],
    good: Identity | None,
    log_end: int,
    snapshot: SnapshotRead,
) -> str | None:
    """Why a state dir's log (read whole, with ``error`` where the read stopped) must be
    healed, in words; ``None`` when it can be used as it is. The one verdict the service
    acts on and ``idstitch doctor`` reports. A newer format is not damage (L8)."""
    cause = getattr(error, "cause", None)
    good_seq = 0 if good is None else good.seq
    if error is not None and cause not in ("torn-tail", "newer-version"):
        return str(error)
    if held is not None and lost_records(held, hashes, good_seq, log_end, snapshot):
        return f"its snapshot names seq {held.seq}, past the log's last record (seq {good_seq})"
    if cause == "torn-tail" and (held is None or good is None or held.h != good.h):
        # A crash cuts the write of the record after the one the snapshot names (each
        # change writes the snapshot after its record). Otherwise the cut-off bytes may be
        # a record that was acted on (an alias PostHog has), and cannot be read.
        return f"{error}, and the snapshot does not name the record before it"
    return None


def lost_records(
    held: Identity | None, hashes: set[str], good_seq: int, log_end: int, snapshot: SnapshotRead
) -> bool:
    """Whether the snapshot saw records the log no longer holds: it names a later seq, no
    record of the log has its hash, and the log is shorter than the snapshot saw it. (No
    shorter, yet without the snapshot's record: the snapshot is another log's.)"""
    return (
        held is not None
        and held.h not in hashes
        and held.seq > good_seq
        and log_end < snapshot_offset(snapshot)
    )


def names_line(identity: Identity, line: bytes) -> bool:
    """Whether ``line`` (a whole log line, with or without its ``\\n``) is the record
    ``identity`` was folded up to: the same ``seq`` and the same hash."""
    return names_record(line, identity.seq, identity.h)


def foreign_identity(snapshot: SnapshotRead) -> tuple[str, str | None] | None:
    """``(device_id, user_id)`` of a foreign state file to adopt, if it is one.

    The device id becomes the distinct id of anonymous events and the alias's
    target, so R13's refusals apply to it as to a user id (a legacy file
    holding ``"null"`` would otherwise pool every such machine into one person).
    """
    if snapshot.status != "foreign":
        return None
    data = snapshot.data
    device_id = data.get("device_id")
    if not isinstance(device_id, str) or user_id_problem(device_id) is not None:
        return None
    distinct = data.get("distinct_id")
    if isinstance(distinct, str) and distinct != device_id and user_id_problem(distinct) is None:
        return device_id, distinct
    return device_id, None


class HealPlan:
    """The identity a healed log starts from.

    ``fresh``: nothing trustworthy was left (or what came after it could
    hide an alias or a logout), so a new device is minted, with no user;
    ``device_id`` is then ``None`` and the caller mints one. ``source`` says
    in words where the identity came from, for the warning and ``doctor``.
    """

    __slots__ = ("device_id", "fresh", "linked_user", "source", "user_id")

    def __init__(
        self,
        *,
        device_id: str | None,
        user_id: str | None,
        linked_user: str | None,
        source: str,
    ) -> None:
        self.device_id = device_id
        self.user_id = user_id
        self.linked_user = linked_user
        self.fresh = device_id is None
        self.source = source

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HealPlan) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str | None, str | None, str | None, str]:
        return (self.device_id, self.user_id, self.linked_user, self.source)

    def __repr__(self) -> str:
        return (
            f"HealPlan(device_id={self.device_id!r}, user_id={self.user_id!r}, "
            f"linked_user={self.linked_user!r}, source={self.source!r})"
        )


def _fresh(why: str) -> HealPlan:
    return HealPlan(device_id=None, user_id=None, linked_user=None, source=f"a new device: {why}")


def heal_plan(
    *,
    good: Identity | None,
    good_devices: Iterable[str],
    held: Identity | None,
    data: bytes,
    good_end: int,
) -> HealPlan:
    """The best identity a damaged log lets a heal trust.

    ``good`` is the fold of the records before the damage (``None``: not
    even the first one is good), ``good_devices`` every device id those
    records named, ``held`` the snapshot's identity (already checked by
    :func:`snapshot_identity`), ``data`` the whole damaged file and
    ``good_end`` the byte offset just past the last good record.
    """
    trusted, after, source = good, data[good_end:], "the last good record"
    if held is not None and (good is None or held.seq > good.seq):
        named_at = _line_named(held, data, good_end)
        if named_at is not None:
            trusted, after, source = (
                held,
                data[named_at:],
                "the snapshot, whose record the log holds",
            )
        elif (
            good is not None
            and _agrees(held, good, set(good_devices))
            and _records_in(data[good_end:]) <= held.seq - good.seq
        ):
            # Its record is lost or damaged, but the bytes after the good records hold no
            # more records than it saw (one more could be a logout it never knew of).
            trusted, after, source = held, b"", "the snapshot, consistent with the good records"
    if trusted is None:
        return _fresh("no record and no snapshot could be trusted")
    if _holds_more(after):
        return _fresh("records after the last trusted one cannot be checked")
    linked = trusted.linked_user
    if linked is None:
        claimed, linked = _alias_evidence(trusted.device_id, data)
        if claimed and linked is None:
            return _fresh("the damaged bytes may hold an alias of the device")
    return HealPlan(
        device_id=trusted.device_id, user_id=trusted.user_id, linked_user=linked, source=source
    )


def _line_named(held: Identity, data: bytes, start: int) -> int | None:
    """The offset just past the line of ``data`` (from ``start``) that ``held`` names."""
    position = start
    while position < len(data):
        end = data.find(b"\n", position)
        end = len(data) if end < 0 else end + 1
        if names_line(held, data[position:end]):
            return end
        position = end
    return None


def _agrees(held: Identity, good: Identity, devices: set[str]) -> bool:
    """Whether a snapshot naming a later record could have followed the good records.

    Its device is the good records' (and, if they aliased it, to the same
    user), or one they never named (a logout the log lost rotated to it).
    """
    if held.device_id == good.device_id:
        return good.linked_user is None or held.linked_user == good.linked_user
    return held.device_id not in devices


def _records_in(data: bytes) -> int:
    """How many records damaged bytes hold: each record has one of each of these four marks.
    One damaged byte can spoil or make at most one mark, so at least three of the four counts
    are right and the upper middle one is the number of records."""
    counts = sorted(data.count(mark) for mark in (b'{"v":', b'"seq":', b',"h":"', b"\n"))
    return counts[2]


def _holds_more(after: bytes) -> bool:
    """Whether bytes after the trusted record could hold (part of) a record: anything but NULs
    and blanks. A cut-off record may have been an alias or a logout that was acted on."""
    return bool(after.strip(b"\x00 \t\r\n"))


def _alias_evidence(device_id: str, data: bytes) -> tuple[bool, str | None]:
    """Whether any line of the damaged bytes claims an alias of ``device_id``, and to whom.

    ``(False, None)``: none does; ``(True, user)``: the first that does names
    ``user``; ``(True, None)``: one does but its user cannot be read (the
    caller then mints a fresh device).
    """
    needle = b'"device_id":"%s"' % device_id.encode("utf-8", "replace")
    marks = (b'"alias":true', b'"aliased":true', b'"linked_user":"')
    for line in data.split(b"\n"):
        if needle in line and any(mark in line for mark in marks):
            return True, _user_in(line)  # the first alias is the one PostHog kept
    return False, None


def _user_in(line: bytes) -> str | None:
    """The legal user a damaged line names as aliased, if it can be read at all."""
    import json

    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    user = record.get("linked_user") if record.get("kind") == "heal" else record.get("user_id")
    if isinstance(user, str) and user_id_problem(user) is None:
        return user
    return None
