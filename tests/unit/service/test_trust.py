"""The verdicts of service/_trust.py, on bytes and values alone: what a heal may believe.

Every rule of trust is checked here without a file or a process: the plan a damaged log
gives, the evidence of an alias in damaged bytes, and a snapshot's consistency.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from idstitch.machine import Identity, State
from idstitch.service._pending import Pending, pending_names, read_pending, write_pending
from idstitch.service._storage import OPENING, STORAGE_TRANSITIONS, Storage, StorageMachine
from idstitch.service._trust import HealPlan, heal_plan, lost_records, names_line
from idstitch.store import SnapshotRead
from idstitch.store._line import looks_torn

D1, D2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


def _identity(
    *, seq: int, device: str = D1, user: str | None = None, linked: str | None = None
) -> Identity:
    state = State.ANONYMOUS if user is None else State.ALIASED if user == linked else State.STAMPED
    return Identity(
        state=state,
        device_id=device,
        user_id=user,
        linked_user=linked,
        undo=None,
        seq=seq,
        h=f"{seq:032x}",
    )


def _line(identity: Identity, body: str = '"kind":"login"') -> bytes:
    return (
        f'{{"v":1,"seq":{identity.seq},"at":"x",{body},"device_id":"{identity.device_id}",'
        f'"h":"{identity.h}"}}\n'
    ).encode()


def test_nothing_trustworthy_mints_a_fresh_device() -> None:
    """No good record and no snapshot: a new device, no user."""
    plan = heal_plan(good=None, good_devices=(), held=None, data=b"garbage", good_end=0)
    assert (True, None, None, None) == (plan.fresh, plan.device_id, plan.user_id, plan.linked_user)


def test_the_last_good_record_is_kept_when_nothing_follows_it() -> None:
    """Damage that left only NULs or blanks after the last good record: that record's identity."""
    good = _identity(seq=3, user="user-a", linked="user-a")
    data = _line(good) + b"\x00\x00 \n"
    plan = heal_plan(good=good, good_devices={D1}, held=None, data=data, good_end=len(_line(good)))
    expected = HealPlan(
        device_id=D1, user_id="user-a", linked_user="user-a", source="the last good record"
    )
    assert expected == plan


@pytest.mark.parametrize("after", [b'{"v":1,"seq":4,"at":"x","kind":"log', b"x", b"}\n"])
def test_bytes_after_the_trusted_record_mint_a_fresh_device(after: bytes) -> None:
    """What follows the last trusted record may be a cut-off logout or alias (R16, R3):
    a fresh device with no user, never the old user on the old device."""
    good = _identity(seq=3, user="user-a", linked="user-a")
    data = _line(good) + after
    plan = heal_plan(good=good, good_devices={D1}, held=None, data=data, good_end=len(_line(good)))
    assert (True, None) == (plan.fresh, plan.user_id)


def test_a_snapshot_whose_record_the_log_holds_is_trusted() -> None:
    """The snapshot names a later line present in the file (and the last one): its identity."""
    good = _identity(seq=1)
    held = _identity(seq=3, device=D2, user="user-b")
    data = _line(good) + b"damaged line\n" + _line(held)
    plan = heal_plan(good=good, good_devices={D1}, held=held, data=data, good_end=len(_line(good)))
    assert (D2, "user-b", None, False) == (
        plan.device_id,
        plan.user_id,
        plan.linked_user,
        plan.fresh,
    )


def test_an_alias_in_the_damaged_bytes_survives_an_edited_snapshot() -> None:
    """R3: a snapshot edited to say "never aliased" cannot hide an alias line of its device:
    the heal carries the alias the bytes show."""
    good = _identity(seq=1)
    alias = b'{"v":1,"seq":2,"kind":"login","device_id":"%s","user_id":"user-a","alias":true}\n'
    held = _identity(seq=3)  # D1, anonymous, linked_user None: the edit
    data = _line(good) + alias % D1.encode() + _line(held, '"kind":"clear"')
    plan = heal_plan(good=good, good_devices={D1}, held=held, data=data, good_end=len(_line(good)))
    assert ("user-a", False) == (plan.linked_user, plan.fresh)


def test_an_unreadable_alias_of_the_device_mints_a_fresh_one() -> None:
    """An alias line of the device whose user cannot be read: a fresh device (R3)."""
    good = _identity(seq=1)
    alias = b'{"seq":2,"device_id":"%s","user_id":nope,"alias":true\n' % D1.encode()
    held = _identity(seq=3)
    data = _line(good) + alias + _line(held, '"kind":"clear"')
    plan = heal_plan(good=good, good_devices={D1}, held=held, data=data, good_end=len(_line(good)))
    assert plan.fresh


LINKED_A = _identity(seq=2, user="user-a", linked="user-a")


@pytest.mark.parametrize(
    ("good", "held", "trusted"),
    [
        (_identity(seq=2), _identity(seq=5, user="user-a", linked="user-a"), True),
        (_identity(seq=2), _identity(seq=5, device=D2), True),
        (LINKED_A, _identity(seq=5, linked="user-a"), True),
        (LINKED_A, _identity(seq=5, user="user-b"), False),
        (LINKED_A, _identity(seq=5), False),
    ],
    ids=["later-alias", "rotated", "cleared", "other-user-unlinked", "unlinked"],
)
def test_a_snapshot_past_the_end_is_trusted_only_when_consistent(
    good: Identity, held: Identity, trusted: bool
) -> None:
    """A snapshot naming a record the log lost is believed only if the good records could have
    led to it: never one that un-aliases the device they aliased (R3)."""
    data = _line(good)
    plan = heal_plan(good=good, good_devices={D1}, held=held, data=data, good_end=len(data))
    assert trusted == plan.source.startswith("the snapshot")


def test_a_snapshot_is_not_trusted_on_a_device_the_good_records_left() -> None:
    """The good records rotated away from D2 (a logout): a snapshot back on D2 is not theirs."""
    good = _identity(seq=2)
    held = _identity(seq=5, device=D2, user="user-a")
    data = _line(good)
    plan = heal_plan(good=good, good_devices={D1, D2}, held=held, data=data, good_end=len(data))
    assert "the last good record" == plan.source


def test_lost_records_needs_a_log_shorter_than_the_snapshot_saw() -> None:
    """A snapshot naming a later seq is lost records only if the log is shorter than it saw;
    otherwise it is another log's snapshot."""
    held = _identity(seq=5)
    snapshot = SnapshotRead("ok", {"offset": 500})
    assert (True, False, False) == (
        lost_records(held, set(), 2, 300, snapshot),
        lost_records(held, set(), 2, 600, snapshot),
        lost_records(held, {held.h}, 2, 300, snapshot),
    )


def test_names_line_matches_seq_and_hash_with_or_without_the_line_end() -> None:
    """The steady-start check: the same seq and hash, whether or not the newline survived."""
    identity = _identity(seq=7)
    line = _line(identity)
    assert (True, True, False) == (
        names_line(identity, line),
        names_line(identity, line[:-1]),
        names_line(_identity(seq=8), line),
    )


def test_pending_forgettings_round_trip_in_order(tmp_path: Path) -> None:
    """A pending logout and clear are written whole, listed, and read back oldest first;
    a damaged or foreign pending file is skipped, never raised on."""
    folder = str(tmp_path)
    second = write_pending(folder, kind="clear", new_device_id=None, at="2026-01-02T00:00:00Z")
    first = write_pending(folder, kind="logout", new_device_id=D2, at="2026-01-01T00:00:00Z")
    (Path(folder) / "identity.pending-zz").write_bytes(b"{not json")
    (Path(folder) / "identity.pending-zy").write_text('{"kind": "logout", "at": "x"}')
    names = pending_names(sorted(p.name for p in Path(folder).iterdir()))
    found = read_pending(folder, names)
    assert [("logout", D2, first), ("clear", None, second)] == [
        (p.kind, p.new_device_id, p.name) for p in found
    ]
    assert all(isinstance(p, Pending) for p in found)


def test_the_storage_machine_moves_only_along_its_table() -> None:
    """Every storage transition is a row of the table; any other edge is refused."""
    machine = StorageMachine()
    assert OPENING == machine.state
    assert Storage.HEALTHY == machine.fire("dir_ok")
    assert Storage.DEFERRED == machine.fire("lock_busy", "held")
    assert ("held", Storage.HEALTHY) == (machine.reason, machine.fire("lock_taken"))
    with pytest.raises(AssertionError, match="no storage transition from healthy on healed"):
        machine.fire("healed")
    sources = {str(row.source) for row in STORAGE_TRANSITIONS}
    # memory is the one state a process never leaves: the next process starts afresh.
    assert {OPENING, *map(str, Storage)} - {"memory"} == sources


def test_a_snapshot_older_than_a_record_after_the_damage_is_not_trusted() -> None:
    """R16: the snapshot (seq 2) agrees with the good records, but a readable line after the
    damage claims seq 3 (a logout it never saw): a fresh device, not the snapshot's user."""
    good = _identity(seq=1)
    held = _identity(seq=2, user="user-a", linked="user-a")
    damaged = b'{"v":1,"seq":2,"kind":"login"\x0b'
    logout = _line(_identity(seq=3), '"kind":"logout"')
    data = _line(good) + damaged + logout
    plan = heal_plan(good=good, good_devices={D1}, held=held, data=data, good_end=len(_line(good)))
    assert (True, None) == (plan.fresh, plan.user_id)


@pytest.mark.parametrize(
    ("tail", "torn"),
    [
        (b"", True),
        (b"\x00\x00", True),
        (b'{"v":1,"se', True),
        (b'{"v', True),
        (b'{"v":1,"seq":3,"kind":"logout","h":"' + b"0" * 32 + b'"}\x0b', False),
        (b"# a comment", False),
        (b'{"v":1}\n', False),
    ],
)
def test_looks_torn_accepts_only_what_a_crash_leaves(tail: bytes, torn: bool) -> None:
    """A cut-off write: NULs, or a record's start with no line end and no hash field yet."""
    assert torn == looks_torn(tail)
