"""HandleTable's questions about one inode (``fd_of``, ``has_writer``), asked directly:
the answers, and that they come from the table's index by inode, not from a scan of
every open handle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from unionfs.fuse.handles import FileHandle, HandleTable


@pytest.fixture
def table() -> Iterator[HandleTable]:
    t = HandleTable()
    yield t
    t.close_all()


def _fd(path: Path) -> int:
    path.touch()
    return os.open(path, os.O_RDONLY)


def _handle(tmp: Path, name: str, ino: int, *, writable: bool = False, upper: bool = False,
            flags: int = 0) -> FileHandle:  # fmt: skip
    return FileHandle(_fd(tmp / name), ino, writable, upper, flags=flags)


class _NoScan(dict[int, FileHandle]):
    """The table's map of every open file, refusing to be walked."""

    def values(self):  # type: ignore[override]
        raise AssertionError("every open handle was scanned")

    def items(self):  # type: ignore[override]
        raise AssertionError("every open handle was scanned")

    def __iter__(self):  # type: ignore[override]
        raise AssertionError("every open handle was scanned")


def test_fd_of_prefers_a_handle_on_the_upper_file(table: HandleTable, tmp_path: Path) -> None:
    table.open_file(_handle(tmp_path, "lower", 7))
    lower_fd = table.fd_of(7)
    assert lower_fd is not None
    assert table.fd_of(7, upper=True) is None
    fh = table.open_file(_handle(tmp_path, "upper", 7, upper=True, flags=os.O_RDWR))
    upper_fd = table.file(fh).fd
    assert table.fd_of(7) == upper_fd != lower_fd
    assert table.fd_of(7, upper=True) == upper_fd
    table.release_file(fh)
    assert table.fd_of(7) == lower_fd
    assert table.fd_of(7, upper=True) is None


def test_fd_of_follows_a_handle_moved_to_the_upper_file(
    table: HandleTable, tmp_path: Path
) -> None:
    fh = table.open_file(_handle(tmp_path, "lower", 3))
    table.replace_fd(table.file(fh), _fd(tmp_path / "upper"), upper=True)
    assert table.fd_of(3, upper=True) == table.file(fh).fd


def test_has_writer_counts_the_writers_of_one_inode(table: HandleTable, tmp_path: Path) -> None:
    reader = table.open_file(_handle(tmp_path, "r", 5))
    assert not table.has_writer(5)
    one = table.open_file(_handle(tmp_path, "w1", 5, writable=True, upper=True))
    two = table.open_file(_handle(tmp_path, "w2", 5, writable=True, upper=True))
    other = table.open_file(_handle(tmp_path, "o", 6, writable=True))
    assert table.has_writer(5) and table.has_writer(6)
    table.release_file(one)
    assert table.has_writer(5)
    table.release_file(two)
    assert not table.has_writer(5)
    table.release_file(reader)
    table.release_file(other)
    assert not table.has_writer(6)
    assert table.fd_of(5) is None and table.fd_of(6) is None
    assert table.descriptors() == 0


def test_questions_about_one_inode_do_not_scan_every_open_handle(
    table: HandleTable, tmp_path: Path
) -> None:
    for ino in range(100, 140):
        table.open_file(_handle(tmp_path, f"f{ino}", ino, writable=ino % 2 == 0))
    mine = table.open_file(_handle(tmp_path, "mine", 9, writable=True, upper=True))
    table._files = _NoScan(table._files)
    assert table.fd_of(9) == table.file(mine).fd
    assert table.has_writer(9) and table.has_writer(100) and not table.has_writer(101)
    assert table.fd_of(12345) is None and not table.has_writer(12345)
