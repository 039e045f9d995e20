"""What the store's writers and readers leave behind: no open file, and durable directory entries.

Observed through the real calls: the process's open descriptors (``/proc/self/fd``)
and the ``open`` audit events Python raises for every ``os.open`` (PEP 578), which
show the state dir being opened for its fsync.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from idstitch.store import FileLog, keep_aside, publish, read_snapshot, write_snapshot
from idstitch.store._fs import ends_with, ensure_dir, fsync_dir, holds, peek_end
from support.helpers import AT

#: Paths ``os.open`` was called on while a test listens (``None``: nobody listens).
_OPENED: list[str] | None = None


def _listen(event: str, args: tuple[object, ...]) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str):
        _OPENED.append(args[0])


sys.addaudithook(_listen)  # hooks cannot be removed: this one records only while asked

#: Directories another process creates just before this one's ``os.mkdir`` of them.
_CREATED_FIRST: list[str] = []


def _create_first(event: str, args: tuple[object, ...]) -> None:
    if event == "os.mkdir" and args[0] in _CREATED_FIRST:
        _CREATED_FIRST.remove(args[0])
        os.mkdir(str(args[0]), 0o700)  # what the other process's ensure_dir does


sys.addaudithook(_create_first)


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """The paths opened while the test runs."""
    global _OPENED  # noqa: PLW0603 - the audit hook's one switch
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def open_fds() -> set[str]:
    """This process's open file descriptors."""
    return set(os.listdir("/proc/self/fd"))


GENESIS = ("genesis", {"device_id": "d-1", "runtime": "persistent"})
CLEAR = ("clear", {"device_id": "d-1", "pid": 1})


def test_reading_and_appending_leave_no_descriptor_open(tmp_path: Path) -> None:
    """append, tail and complete_line close every file they open, on a new or a grown log."""
    log = FileLog(tmp_path / "state" / "identity.jsonl")
    before = open_fds()
    log.append(*GENESIS, at=AT)
    log.append(*CLEAR, at=AT)
    log.tail()
    log.complete_line()
    assert before == open_fds()


def test_the_first_append_makes_the_new_log_durable_in_its_directory(
    tmp_path: Path, opened: list[str]
) -> None:
    """The append that creates the log (and its dir) fsyncs the directory; later appends do not:
    the log's directory entry survives a power cut once the first append has returned."""
    folder = tmp_path / "state"
    log = FileLog(folder / "identity.jsonl")
    log.append(*GENESIS, at=AT)
    first = list(opened)
    opened.clear()
    log.append(*CLEAR, at=AT)
    assert (1, 0) == (first.count(str(folder)), opened.count(str(folder)))


def test_an_append_that_creates_the_log_in_an_existing_dir_fsyncs_the_dir(
    tmp_path: Path, opened: list[str]
) -> None:
    """A state dir made by someone else still gets its fsync when the log file is new in it."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    FileLog(folder / "identity.jsonl").append(*GENESIS, at=AT)
    assert 1 == opened.count(str(folder))


def test_every_reader_closes_what_it_opens(tmp_path: Path) -> None:
    """Reading a log's end, checking it against a snapshot's record, and reading the snapshot
    leave no descriptor open, whatever they answer."""
    log = FileLog(tmp_path / "identity.jsonl")
    record = log.append(*GENESIS, at=AT)
    write_snapshot(tmp_path / "snapshot.json", {"seq": 1})
    end = log.end
    assert end is not None
    before = open_fds()
    answers = (
        peek_end(log.file)[0],
        ends_with(log.file, 1, record["h"]),
        ends_with(log.file, 1, record["h"], end.offset),
        ends_with(log.file, 2, record["h"], end.offset),
        holds(log.file, 1, record["h"], end.offset),
        read_snapshot(tmp_path / "snapshot.json").status,
    )
    assert (end.offset, True, True, False, True, "ok") == answers
    assert before == open_fds()


def test_ensure_dir_says_whether_it_created_the_dir(tmp_path: Path) -> None:
    """ensure_dir answers True when it made the dir (0700, its missing parent too), then False:
    the answer that decides whether the parent's entry needs an fsync."""
    folder = tmp_path / "parent" / "state"
    made = (ensure_dir(folder), ensure_dir(folder))
    modes = [stat.S_IMODE(os.stat(path).st_mode) for path in (folder.parent, folder)]
    assert ((True, False), [0o700, 0o700]) == (made, modes)


def test_a_dir_another_process_creates_first_is_no_error(tmp_path: Path) -> None:
    """When another process creates the state dir between ensure_dir's check and its own
    mkdir, ensure_dir still returns, with the dir in place."""
    folder = tmp_path / "state"
    _CREATED_FIRST.append(str(folder))
    ensure_dir(folder)
    assert ([], True) == (_CREATED_FIRST, folder.is_dir())


def test_publishing_a_file_makes_its_name_durable(tmp_path: Path, opened: list[str]) -> None:
    """publish writes the whole file under its name, fsyncs the directory, and closes it."""
    before = open_fds()
    publish(tmp_path, "pending-1", b"data")
    assert (b"data", 1, before) == (
        (tmp_path / "pending-1").read_bytes(),
        opened.count(str(tmp_path)),
        open_fds(),
    )


def test_keeping_a_file_aside_makes_the_move_durable(tmp_path: Path, opened: list[str]) -> None:
    """keep_aside's rename is fsynced in the directory once the file has its new name."""
    damaged = tmp_path / "identity.jsonl"
    damaged.write_bytes(b"damaged")
    kept = keep_aside(damaged)
    assert (b"damaged", False, 1) == (
        Path(kept).read_bytes(),
        damaged.exists(),
        opened.count(str(tmp_path)),
    )


def test_a_snapshot_in_a_new_dir_is_durable_in_both_dirs(tmp_path: Path, opened: list[str]) -> None:
    """write_snapshot fsyncs its directory, and the parent too when it created the directory;
    a later write fsyncs the directory only."""
    folder = tmp_path / "state"
    write_snapshot(folder / "snapshot.json", {"seq": 1})
    first = (opened.count(str(folder)), opened.count(str(tmp_path)))
    opened.clear()
    write_snapshot(folder / "snapshot.json", {"seq": 2})
    assert ((1, 1), (1, 0)) == (first, (opened.count(str(folder)), opened.count(str(tmp_path))))


def _disk_error(fd: int) -> None:
    """``os.fsync`` as a failing disk answers it: the written data may be lost."""
    raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_a_publish_whose_data_the_disk_cannot_sync_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the disk fails the fsync of the published file's data (EIO), publish raises that
    error before the file gets its name: neither it nor its temporary is left, nor an open
    descriptor."""
    monkeypatch.setattr(os, "fsync", _disk_error)
    before = open_fds()
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        publish(tmp_path, "pending-1", b"data")
    assert ([], before) == (os.listdir(tmp_path), open_fds())


def test_a_directory_sync_the_disk_fails_raises_and_closes_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync_dir reports a failed sync of the directory's entries (EIO) instead of taking them
    as durable, and closes the directory all the same."""
    monkeypatch.setattr(os, "fsync", _disk_error)
    before = open_fds()
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        fsync_dir(tmp_path)
    assert before == open_fds()


def test_a_publish_that_cannot_rename_leaves_no_temporary(tmp_path: Path) -> None:
    """When the name is taken by a directory, publish raises and removes its temporary file."""
    (tmp_path / "pending-1" / "inside").mkdir(parents=True)
    with pytest.raises(OSError, match=r"."):
        publish(tmp_path, "pending-1", b"data")
    assert ["pending-1"] == sorted(os.listdir(tmp_path))


def test_a_snapshot_that_cannot_replace_leaves_no_temporary(tmp_path: Path) -> None:
    """When the snapshot's name is taken by a directory, write_snapshot raises and removes its
    temporary file."""
    (tmp_path / "snapshot.json" / "inside").mkdir(parents=True)
    with pytest.raises(OSError, match=r"."):
        write_snapshot(tmp_path / "snapshot.json", {"seq": 1})
    assert ["snapshot.json"] == sorted(os.listdir(tmp_path))


_FULL_PUBLISH = """
import json, os, resource, signal, sys
from idstitch.store import publish

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))  # a disk that fills up at 64 bytes
before = len(os.listdir("/proc/self/fd"))
try:
    publish(sys.argv[1], "pending-1", b"x" * 4096)
    raised = ""
except OSError as exc:
    raised = str(exc)
finally:  # room again for what the process writes at exit (coverage's data)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print(json.dumps(["pending-1" in raised, len(os.listdir("/proc/self/fd")) - before]))
"""


@pytest.mark.processes
def test_a_publish_the_disk_cuts_short_leaves_nothing_and_says_so(tmp_path: Path) -> None:
    """A write that fails half-way (the disk fills: a file-size limit in a child) raises an
    OSError naming the file, closes it and leaves neither the file nor its temporary behind."""
    import json
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _FULL_PUBLISH, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (0, "") == (done.returncode, done.stderr)
    assert ([True, 0], []) == (json.loads(done.stdout), os.listdir(tmp_path))


def test_an_append_whose_record_the_disk_cannot_sync_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the disk fails the fsync of an appended record (EIO), append raises that error and
    cuts the record back off: the log holds what it held, its end is the one before."""
    log = FileLog(tmp_path / "identity.jsonl")
    records = [log.append(*GENESIS, at=AT), log.append(*CLEAR, at=AT)]
    before = (log.path.read_bytes(), log.end)
    monkeypatch.setattr(os, "fsync", _disk_error)
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        log.append("clear", {"device_id": "d-1", "pid": 2}, at=AT)
    monkeypatch.undo()
    assert (before, records) == ((log.path.read_bytes(), log.end), list(log.records()))


def test_a_line_end_the_disk_cannot_sync_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the disk fails the fsync of the line end complete_line writes for a whole last
    record (EIO), it raises and leaves the log byte for byte as it was: that record whole,
    still without its line end."""
    log = FileLog(tmp_path / "identity.jsonl")
    log.append(*GENESIS, at=AT)
    record = log.append(*CLEAR, at=AT)
    unended = log.path.read_bytes()[:-1]
    log.path.write_bytes(unended)
    monkeypatch.setattr(os, "fsync", _disk_error)
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):
        log.complete_line()
    monkeypatch.undo()
    assert (unended, record) == (log.path.read_bytes(), log.tail().record)


def test_a_torn_tail_removal_the_disk_cannot_sync_is_not_reported_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When the disk fails the fsync that makes a torn tail's removal durable (EIO), append
    raises that error before writing its record, and neither keeps nor logs a repair."""
    log = FileLog(tmp_path / "identity.jsonl")
    log.append(*GENESIS, at=AT)
    whole = log.path.read_bytes()
    log.path.write_bytes(whole + b'{"v":1,"seq":2,"at"')
    monkeypatch.setattr(os, "fsync", _disk_error)
    with (
        caplog.at_level(logging.WARNING, logger="idstitch"),
        pytest.raises(OSError, match=os.strerror(errno.EIO)),
    ):
        log.append(*CLEAR, at=AT)
    assert (whole, [], []) == (log.path.read_bytes(), log.repairs, caplog.record_tuples)
