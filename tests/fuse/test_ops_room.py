"""UnionOperations, not mounted: a writer caches only while the upper has room (issue 16.1).

The upper's free space is a stand-in (``Room``) so that each side of the reserve and the
floor can be reached without filling a disk. The mounted behaviour, against kernel
overlayfs, is tests/differential/test_full_upper_vs_kernel.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from unionfs.fuse import room as roommod
from unionfs.fuse.ops import UnionOperations
from unionfs.fuse.room import MiB, UpperSpace

from .conftest import MakeOps
from .driver import CTX, ROOT, call, fuse_errno, lookup_ino

DIRTY = 8 * MiB  # the kernel may hold this much dirty (the bdi's limit)


@pytest.fixture(autouse=True)
def fresh_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every free-space question asks statvfs (the 10 ms reuse would hide a change)."""
    monkeypatch.setattr(roommod, "FRESH_NS", -1)


class Room:
    """A statvfs of an upper with ``free`` bytes available."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self) -> os.statvfs_result:
        return os.statvfs_result((4096, 4096, 1 << 30, 0, self.free // 4096, 0, 0, 0, 0, 255))


def with_room(
    make_ops: MakeOps, free: int, can_refuse: bool = True
) -> tuple[UnionOperations, Room]:
    ops = make_ops({"lower": "lower data"}, upper={"f": "upper data"})
    room = Room(free)
    ops.room = UpperSpace(room, DIRTY, can_refuse)
    return ops, room


def through(fh: int) -> SimpleNamespace:
    """The context of a getattr the kernel sends through open file *fh* (before a write
    into its cache); a stat(2) has ``fh=None``."""
    return SimpleNamespace(uid=0, gid=0, pid=1, umask=0o022, fh=fh)


def test_a_writer_caches_while_the_upper_has_room(make_ops: MakeOps) -> None:
    ops, _ = with_room(make_ops, 1 << 30)
    f = lookup_ino(ops, ROOT, b"f")
    info = call(ops.open, f, os.O_WRONLY, CTX)
    assert not info.direct_io
    assert ops.room.cached == {info.fh: f}
    call(ops.release, info.fh)
    assert ops.room.cached == {}


def test_below_the_reserve_a_writer_goes_direct(make_ops: MakeOps) -> None:
    ops, room = with_room(make_ops, 0)
    room.free = ops.room.reserve - 4096
    f = lookup_ino(ops, ROOT, b"f")
    info = call(ops.open, f, os.O_RDWR, CTX)
    assert info.direct_io and ops.room.cached == {}
    made, _ = call(ops.create, ROOT, b"new", 0o644, os.O_WRONLY | os.O_CREAT, CTX)
    assert made.direct_io and ops.room.cached == {}
    # A reader never: it writes nothing, and keeps the kernel's page cache.
    reader = call(ops.open, lookup_ino(ops, ROOT, b"lower"), os.O_RDONLY, CTX)
    assert not reader.direct_io
    for fh in (info.fh, made.fh, reader.fh):
        call(ops.release, fh)


def test_without_the_binding_s_getattr_fh_every_writer_goes_direct(make_ops: MakeOps) -> None:
    ops, _ = with_room(make_ops, 1 << 30, can_refuse=False)
    info = call(ops.open, lookup_ino(ops, ROOT, b"f"), os.O_WRONLY, CTX)
    assert info.direct_io  # nothing could stop a cached writer on a full upper
    call(ops.release, info.fh)


def test_a_cached_writer_is_watched_once_the_upper_falls_below_the_reserve(
    make_ops: MakeOps,
) -> None:
    ops, room = with_room(make_ops, 1 << 30)
    f = lookup_ino(ops, ROOT, b"f")
    fh = call(ops.open, f, os.O_WRONLY, CTX).fh
    call(ops.write, fh, 0, b"x" * 4096)  # still room: nothing changes
    assert ops.room.watched == set()
    assert call(ops.getattr, f, CTX).attr_timeout > 0
    room.free = ops.room.reserve - 1
    call(ops.write, fh, 4096, b"x" * 4096)  # a write-back write sees the upper tight
    assert ops.room.watched == {f}
    # Its attributes now expire at once: the kernel asks before each write into its cache.
    assert call(ops.getattr, f, CTX).attr_timeout == 0
    # Above the floor the write is let through; below it, refused, but never a stat(2).
    assert call(ops.getattr, f, through(fh)).st_size == 8192
    room.free = ops.room.floor - 1
    assert fuse_errno(ops.getattr, f, through(fh)) == errno.ENOSPC
    assert call(ops.getattr, f, CTX).st_size == 8192
    # Space coming back (an rm) ends the watch at the next write.
    room.free = 1 << 30
    call(ops.write, fh, 8192, b"x")
    assert ops.room.watched == set()
    assert call(ops.getattr, f, through(fh)).attr_timeout > 0
    call(ops.release, fh)


def test_closing_the_last_cached_writer_ends_its_watch(make_ops: MakeOps) -> None:
    ops, room = with_room(make_ops, 1 << 30)
    f = lookup_ino(ops, ROOT, b"f")
    fh = call(ops.open, f, os.O_WRONLY, CTX).fh
    room.free = ops.room.floor - 1
    call(ops.write, fh, 0, b"x")
    assert ops.room.watched == {f}
    call(ops.release, fh)
    assert ops.room.watched == set()
    assert call(ops.getattr, f, CTX).attr_timeout > 0


def test_a_direct_writer_leaves_the_floor_to_pending_cached_pages(make_ops: MakeOps) -> None:
    ops, room = with_room(make_ops, 1 << 30)
    f = lookup_ino(ops, ROOT, b"f")
    cached = call(ops.open, f, os.O_WRONLY, CTX).fh
    room.free = ops.room.floor + 8192
    direct = call(ops.create, ROOT, b"d", 0o644, os.O_WRONLY | os.O_CREAT, CTX)[0]
    assert direct.direct_io
    assert call(ops.write, direct.fh, 0, b"y" * 65536) == 8192  # a short write, as a disk
    room.free = ops.room.floor
    assert fuse_errno(ops.write, direct.fh, 8192, b"y") == errno.ENOSPC
    call(ops.release, cached)
    # No cached writer left: the upper alone answers, as under the kernel.
    assert call(ops.write, direct.fh, 8192, b"y" * 100) == 100
    call(ops.release, direct.fh)
    assert (Path(ops.stack.upper.root) / "d").stat().st_size == 8292  # type: ignore[union-attr]


# -- UpperSpace and the bdi, pure ------------------------------------------------------------
def test_the_reserve_and_floor_follow_the_dirty_limit() -> None:
    s = UpperSpace(Room(0), 32 * MiB)
    assert s.floor == 52 * MiB and s.reserve == 104 * MiB
    assert UpperSpace(None).free() == 0 and not UpperSpace(None).may_cache()


def test_the_free_space_answer_counts_what_was_written_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(roommod, "FRESH_NS", 10**12)
    room = Room(1 << 30)
    s = UpperSpace(room, DIRTY)
    assert s.free() == 1 << 30
    room.free = 0  # someone else took it: seen only once the answer is old
    s.wrote(MiB)
    assert s.free() == (1 << 30) - MiB
    assert s.free(exact=True) == 0


def test_the_dirty_limit_is_the_bdi_s_lowered_where_we_may(tmp_path: Path) -> None:
    assert roommod.dirty_limit(None) == roommod.DEFAULT_DIRTY_LIMIT
    assert roommod.dirty_limit(tmp_path / "gone") == roommod.DEFAULT_DIRTY_LIMIT
    (tmp_path / "max_bytes").write_text("1048576\n")
    assert roommod.dirty_limit(tmp_path) == MiB  # already low: kept
    (tmp_path / "max_bytes").write_text(f"{1 << 30}\n")
    assert roommod.dirty_limit(tmp_path) == roommod.ROOT_DIRTY_LIMIT
    assert (tmp_path / "max_bytes").read_text() == str(roommod.ROOT_DIRTY_LIMIT)
