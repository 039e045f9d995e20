"""Keeping damaged files aside: byte for byte, 0600, never over an earlier one, even in a race."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import sys
from pathlib import Path
from types import FrameType

import pytest
from idstitch.store import keep_aside, kept_files
from support.workers import keep_files_aside

DAMAGED = b'{"v":1,"seq":1,"garbage\n\x00\xff'


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """A damaged log (0644) in a state dir, to be kept aside."""
    path = tmp_path / "identity.jsonl"
    path.write_bytes(DAMAGED)
    path.chmod(0o644)
    return path


def mode_of(path: Path | str) -> int:
    """The permission bits of ``path`` (not following a symlink)."""
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_file_is_moved_byte_for_byte_and_made_0600(log_path: Path) -> None:
    """keep_aside moves the file to <name>.damaged-1, same bytes, 0600, and lists it."""
    kept = keep_aside(log_path)
    expected = (f"{log_path}.damaged-1", False, DAMAGED, 0o600, [kept])
    actual = (kept, log_path.exists(), Path(kept).read_bytes(), mode_of(kept), kept_files(log_path))
    assert expected == actual


def test_earlier_kept_files_are_never_overwritten(log_path: Path) -> None:
    """With -1 and -2 taken, the file becomes -3 and the earlier two keep their bytes."""
    for number in (1, 2):
        Path(f"{log_path}.damaged-{number}").write_bytes(b"earlier %d\n" % number)
    kept = keep_aside(log_path)
    contents = [Path(path).read_bytes() for path in kept_files(log_path)]
    assert (f"{log_path}.damaged-3", [b"earlier 1\n", b"earlier 2\n", DAMAGED]) == (kept, contents)


def test_without_hard_links_a_rename_still_never_overwrites(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where link() is refused (EPERM), the fallback rename skips a taken name too."""

    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    Path(f"{log_path}.corrupt-1").write_bytes(b"earlier\n")
    monkeypatch.setattr(os, "link", no_links)
    kept = keep_aside(log_path, label="corrupt")
    assert (f"{log_path}.corrupt-2", DAMAGED, [b"earlier\n", DAMAGED], False) == (
        kept,
        Path(kept).read_bytes(),
        [Path(name).read_bytes() for name in kept_files(log_path, label="corrupt")],
        log_path.exists(),
    )


def test_a_symlink_is_moved_itself_never_followed(tmp_path: Path) -> None:
    """A symlink at the path is kept as a symlink; its target is neither moved nor chmod-ed."""
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(b"not ours\n")
    target.chmod(0o644)
    link = tmp_path / "identity.jsonl"
    link.symlink_to(target)
    kept = keep_aside(link)
    expected = (True, str(target), b"not ours\n", 0o644, False)
    actual = (
        os.path.islink(kept),
        os.readlink(kept),
        target.read_bytes(),
        mode_of(target),
        os.path.lexists(link),
    )
    assert expected == actual


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_a_file_owned_by_someone_else_keeps_its_mode(log_path: Path) -> None:
    """Only a regular file this user owns is made 0600; another user's is moved as it is."""
    os.chown(log_path, 65534, 65534)
    kept = keep_aside(log_path)
    assert (DAMAGED, 0o644, 65534) == (Path(kept).read_bytes(), mode_of(kept), os.stat(kept).st_uid)


def test_nothing_to_keep_raises_and_leaves_no_name(tmp_path: Path) -> None:
    """A missing file raises FileNotFoundError; no kept name is created."""
    with pytest.raises(FileNotFoundError):
        keep_aside(tmp_path / "identity.jsonl")
    assert [] == os.listdir(tmp_path)


def test_a_link_refused_for_another_reason_raises_that_error_and_moves_nothing(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link refused for a reason other than missing hard-link support (EIO) raises that
    error, not the fallback's; the file stays where it was and no kept name is left."""

    def failing_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "link", failing_disk)
    with pytest.raises(OSError, match=os.strerror(errno.EIO)) as raised:
        keep_aside(log_path)
    expected = (errno.EIO, DAMAGED, [log_path.name])
    assert expected == (raised.value.errno, log_path.read_bytes(), os.listdir(log_path.parent))


def test_a_file_that_cannot_be_unlinked_stays_and_its_new_name_is_taken_back(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the old name cannot be removed after the link (EIO), keep_aside raises that error
    and removes the new name again: the file is where it was, under its one name."""
    unlink = os.unlink

    def failing_disk_at_path(target: str, *, dir_fd: int | None = None) -> None:
        if os.fspath(target) == str(log_path):
            raise OSError(errno.EIO, os.strerror(errno.EIO), target)
        unlink(target, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", failing_disk_at_path)
    with pytest.raises(OSError, match=os.strerror(errno.EIO)) as raised:
        keep_aside(log_path)
    expected = (errno.EIO, DAMAGED, [log_path.name])
    assert expected == (raised.value.errno, log_path.read_bytes(), os.listdir(log_path.parent))


def test_a_file_another_keeper_moved_meanwhile_is_left_to_it(tmp_path: Path) -> None:
    """When another keeper moves the file between this keeper's link and its check, and a new
    file takes the path, this keeper raises FileNotFoundError naming the path and takes its
    name back: the first file is kept once (by the other keeper), the new one stays."""
    path = tmp_path / "identity.jsonl"
    path.write_bytes(b"first\n")
    other: list[str] = []

    def other_keeper(frame: FrameType, event: str, arg: object) -> None:
        # Right after this keeper's link returns: the profiler sees no call of its own, so
        # the other keeper's link and unlink run unobserved.
        if event == "c_return" and arg is os.link and not other:
            other.append(keep_aside(path))
            path.write_bytes(b"second\n")

    sys.setprofile(other_keeper)
    try:
        with pytest.raises(FileNotFoundError) as raised:
            keep_aside(path)
    finally:
        sys.setprofile(None)
    kept = [f"{path}.damaged-2"]
    expected = (str(path), kept, kept, [b"first\n"], b"second\n")
    actual = (
        raised.value.filename,
        other,
        kept_files(path),
        [Path(name).read_bytes() for name in kept_files(path)],
        path.read_bytes(),
    )
    assert expected == actual


def test_a_label_is_never_a_path(log_path: Path) -> None:
    """A label with a separator (or empty) is refused with ValueError; the file stays."""
    for label in ("../escape", ""):
        with pytest.raises(ValueError, match="label"):
            keep_aside(log_path, label=label)
    assert DAMAGED == log_path.read_bytes()


def test_kept_files_lists_only_its_own_names_by_number(tmp_path: Path) -> None:
    """kept_files sorts by number (2 before 10) and ignores other labels, files and spellings."""
    log = tmp_path / "identity.jsonl"
    names = [
        "identity.jsonl.damaged-10",
        "identity.jsonl.damaged-2",
        "identity.jsonl.damaged-01",
        "identity.jsonl.damaged-x",
        "identity.jsonl.damaged-",
        "identity.jsonl.corrupt-1",
        "telemetry.json.damaged-1",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    nothing: list[str] = []
    expected = (
        [str(tmp_path / "identity.jsonl.damaged-2"), str(tmp_path / "identity.jsonl.damaged-10")],
        [str(tmp_path / "identity.jsonl.corrupt-1")],
        nothing,
    )
    actual = (
        kept_files(log),
        kept_files(log, label="corrupt"),
        kept_files(tmp_path / "missing" / "identity.jsonl"),
    )
    assert expected == actual


@pytest.mark.processes
def test_concurrent_keepers_keep_every_file_exactly_once(tmp_path: Path) -> None:
    """Two processes put 100 files each at one path, keeping what is there: all 200 kept once."""
    path = tmp_path / "identity.jsonl"
    count = 100
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [
        context.Process(target=keep_files_aside, args=(str(path), writer, count, start))
        for writer in (1, 2)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    kept = kept_files(path)
    contents = sorted(Path(name).read_bytes() for name in kept)
    expected_contents = sorted(
        b"writer %d, file %d\n" % (writer, index) for writer in (1, 2) for index in range(count)
    )
    # Nothing else is left in the folder: no file at the path, no source.
    expected = ([0, 0], expected_contents, {0o600}, sorted(os.path.basename(n) for n in kept))
    actual = (
        [writer.exitcode for writer in writers],
        contents,
        {mode_of(name) for name in kept},
        sorted(os.listdir(tmp_path)),
    )
    assert expected == actual
