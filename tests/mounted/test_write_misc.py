"""The rest of the write path next to kernel overlayfs: fallocate, mknod, fsync of files and
directories, statfs, rename flags the overlay refuses, and descriptors opened before a
copy-up. Each runs on both mounts; outcomes and the trees left must be equal.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from mountutil import tree
from writeutil import (
    Mounted,
    Outcome,
    fallocate,
    on_both,
    outcome,
    summary,
    writable,
)

from unionfs.fuse import features
from unionfs.safecalls import RENAME_EXCHANGE, renameat2

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
RENAME_WHITEOUT = 4
MiB = 1 << 20

LAYERS = [tree({"f": b"lower f\n" * 1000, "d": {"a": b"a" * 10_000}, "g": b"g"})]


def fallocate_steps(m: Mounted) -> list[Outcome]:
    """posix_fallocate, which works on both (glibc falls back to writing where fallocate(2)
    is refused); fallocate(2) itself is pinned below."""

    def posix(rel: str) -> object:
        fd = os.open(m.path(rel), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, 5000)
            return summary(os.fstat(fd)), os.pread(fd, 16, 4990)
        finally:
            os.close(fd)

    return [outcome(lambda: posix("d/posix")), outcome(lambda: posix("f"))]


def test_posix_fallocate_as_on_the_kernel(tmp_path: Path) -> None:
    problems = on_both(tmp_path, LAYERS, fallocate_steps)
    assert not problems, "\n".join(problems)


@pytest.mark.skipif("fallocate" in features.available(), reason="the binding has fallocate")
def test_fallocate_is_eopnotsupp_with_a_stock_pyfuse3(tmp_path: Path) -> None:
    """Stock pyfuse3 3.5 offers no fallocate handler, and the kernel then answers EOPNOTSUPP
    for a FUSE filesystem (tests/differential/test_space_vs_kernel.py: with the patch)."""
    with writable(tmp_path, LAYERS) as m:
        fd = os.open(m.path("d/new"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            with pytest.raises(OSError) as info:
                fallocate(fd, 0, 0, MiB)
            assert info.value.errno == errno.EOPNOTSUPP
        finally:
            os.close(fd)


def mknod_steps(m: Mounted) -> list[Outcome]:
    d = m.path("d")
    return [
        outcome(lambda: os.mknod(d / "zero", stat.S_IFCHR | 0o644, 0)),  # a whiteout's form
        outcome(lambda: os.lstat(d / "zero").st_rdev),
        outcome(lambda: os.mknod(d / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))),
        outcome(lambda: os.mknod(d / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 0))),
        outcome(lambda: os.mknod(d / "sock", stat.S_IFSOCK | 0o600)),
        outcome(lambda: os.mknod(d / "fifo", stat.S_IFIFO | 0o640)),
        outcome(lambda: os.mknod(d / "a", stat.S_IFIFO | 0o640)),
        outcome(lambda: sorted(os.listdir(d))),
    ]


def test_mknod_as_on_the_kernel(tmp_path: Path) -> None:
    """The kernel refuses to create a char device 0/0 through the overlay (EPERM): it would be
    a whiteout, and the new name would vanish."""
    problems = on_both(tmp_path, LAYERS, mknod_steps)
    assert not problems, "\n".join(problems)


def sync_steps(m: Mounted) -> list[Outcome]:
    def sync_dir(rel: str) -> object:
        fd = os.open(m.path(rel), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return None

    def sync_file(rel: str) -> object:
        fd = os.open(m.path(rel), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"+")
            os.fdatasync(fd)
            os.fsync(fd)
            return summary(os.fstat(fd))
        finally:
            os.close(fd)

    def rename_flags(flags: int) -> object:
        fd = os.open(m.mnt, os.O_PATH | os.O_DIRECTORY)
        try:
            renameat2(fd, b"g", fd, b"g2", flags)
        finally:
            os.close(fd)
        return sorted(os.listdir(m.mnt))

    def fs_numbers() -> object:
        st = os.statvfs(m.mnt)
        return st.f_bsize, st.f_frsize, st.f_namemax, st.f_blocks

    return [
        outcome(lambda: sync_dir("d")),
        outcome(lambda: sync_dir("")),
        outcome(lambda: sync_file("d/a")),
        outcome(lambda: rename_flags(RENAME_WHITEOUT)),
        outcome(lambda: rename_flags(RENAME_WHITEOUT | RENAME_EXCHANGE)),
        outcome(lambda: rename_flags(0x80)),
        outcome(fs_numbers),
    ]


def test_fsync_statfs_and_refused_rename_flags_as_on_the_kernel(tmp_path: Path) -> None:
    problems = on_both(tmp_path, LAYERS, sync_steps)
    assert not problems, "\n".join(problems)


DATA = bytes(range(256)) * 4096  # 1 MiB


def stale_steps(m: Mounted) -> list[Outcome]:
    """A descriptor opened read-only before a copy-up reads the copied-up file afterwards
    (overlayfs since 4.19), also once the page cache no longer holds the data."""
    out = []
    held = os.open(m.path("f"), os.O_RDONLY)
    try:
        out.append(outcome(lambda: os.pread(held, 8, 0)))
        fd = os.open(m.path("f"), os.O_RDWR)
        try:
            os.pwrite(fd, b"NEWDATA!" * 1024, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.posix_fadvise(held, 0, 0, os.POSIX_FADV_DONTNEED)  # as memory pressure would
        out.append(outcome(lambda: os.pread(held, 8, 0)))
        out.append(outcome(lambda: os.pread(held, 8, 4096)))
        out.append(outcome(lambda: m.path("f").read_bytes()[:8]))  # a fresh open
        os.truncate(m.path("f"), 100)
        out.append(outcome(lambda: os.pread(held, 1000, 0)))
        out.append(outcome(lambda: os.fstat(held).st_size))
    finally:
        os.close(held)
    return out


def test_descriptor_opened_before_copy_up_reads_the_new_data(tmp_path: Path) -> None:
    problems = on_both(tmp_path, [tree({"f": DATA})], stale_steps)
    assert not problems, "\n".join(problems)
