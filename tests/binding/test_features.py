"""Each feature of the patched pyfuse3 (third_party/pyfuse3) reaches the kernel: a toy file
system (toyfs.py) mounted in a child process counts the requests it gets."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from toymount import Toy

ToyFactory = Callable[..., AbstractContextManager[Toy]]

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if _libc.fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_fallocate_modes_reach_the_file_system(toy: ToyFactory) -> None:
    block = 4096
    with toy() as t:
        path = t.mnt / "f"
        path.write_bytes(b"a" * 16 * block)
        fd = os.open(path, os.O_RDWR)
        try:
            fallocate(fd, 0, 16 * block, 4 * block)  # preallocate past the end: grows
            assert os.fstat(fd).st_size == 20 * block
            fallocate(fd, FALLOC_FL_KEEP_SIZE, 20 * block, 4 * block)
            assert os.fstat(fd).st_size == 20 * block
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * block, 2 * block)
            fallocate(fd, FALLOC_FL_ZERO_RANGE, 8 * block, block)
            data = os.pread(fd, 20 * block, 0)
        finally:
            os.close(fd)
        assert t.counts()["fallocate"] == 4
    expected = b"a" * 2 * block + bytes(2 * block) + b"a" * 4 * block + bytes(block)
    expected += b"a" * 7 * block + bytes(4 * block)
    assert data == expected
    backing = t.backing / "f"
    assert backing.read_bytes() == expected
    # The punched range is a hole in the backing file: the mode was passed through unchanged.
    fd = os.open(backing, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_HOLE) == 2 * block
    finally:
        os.close(fd)


def test_fallocate_collapse_range_is_refused_by_the_kernel_fuse_client(toy: ToyFactory) -> None:
    """Linux's FUSE client passes only KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE (fuse_file_fallocate):
    COLLAPSE_RANGE and INSERT_RANGE never reach a FUSE file system."""
    with toy() as t:
        path = t.mnt / "f"
        path.write_bytes(bytes(64 * 1024))
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(OSError) as info:
                fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
        finally:
            os.close(fd)
        assert info.value.errno == errno.EOPNOTSUPP
        assert t.counts().get("fallocate", 0) == 0


def test_chattr_and_lsattr_round_trip_through_ioctl(toy: ToyFactory) -> None:
    with toy() as t:
        path = t.mnt / "f"
        path.write_bytes(b"x")
        subprocess.run(["chattr", "+A", str(path)], check=True, capture_output=True)
        shown = subprocess.run(
            ["lsattr", str(path)], check=True, capture_output=True, text=True
        ).stdout.split()[0]
        backing = subprocess.run(
            ["lsattr", str(t.backing / "f")], check=True, capture_output=True, text=True
        ).stdout.split()[0]
        assert "A" in shown
        assert shown == backing
        subprocess.run(["chattr", "-A", str(path)], check=True, capture_output=True)
        assert (
            "A"
            not in subprocess.run(
                ["lsattr", str(t.backing / "f")], check=True, capture_output=True, text=True
            ).stdout.split()[0]
        )
        assert t.counts()["ioctl"] >= 4


@pytest.mark.parametrize("cached", [False, True])
def test_cached_listing_is_served_without_readdir_until_invalidated(
    toy: ToyFactory, cached: bool
) -> None:
    features = ["cache_readdir"] if cached else []
    with toy(*features) as t:
        (t.backing / "d").mkdir()
        for i in range(10):
            (t.backing / "d" / f"f{i}").write_bytes(b"")
        for _attempt in range(5):
            first = sorted(os.listdir(t.mnt / "d"))
            looked_up, after_first = t.counts()["lookup"], t.counts()["readdir"]
            assert sorted(os.listdir(t.mnt / "d")) == first
            after_second = t.counts()["readdir"]
            # Another process's `echo 3 > /proc/sys/vm/drop_caches` (a benchmark's cold
            # pass) evicts the directory's inode, and its cached listing with it: the
            # kernel looks "d" up again. Only a pair of listings without that tells.
            if t.counts()["lookup"] == looked_up:
                break
        # A change behind the kernel's back: only an invalidation makes it visible.
        (t.backing / "d" / "new").write_bytes(b"")
        t.invalidate("d")
        third = os.listdir(t.mnt / "d")
        after_third = t.counts()["readdir"]
    assert "new" in third
    if cached:
        assert after_second == after_first
    else:
        assert after_second > after_first
    assert after_third > after_second


@pytest.mark.parametrize("cached", [False, True])
def test_cached_symlink_is_read_once(toy: ToyFactory, cached: bool) -> None:
    with toy(*(["cache_symlinks"] if cached else [])) as t:
        os.symlink("target", t.backing / "l")
        for _attempt in range(5):
            assert os.readlink(t.mnt / "l") == "target"  # looked up, read (and cached)
            looked_up, before = t.counts()["lookup"], t.counts()["readlink"]
            for _ in range(4):
                assert os.readlink(t.mnt / "l") == "target"
            reads = t.counts()["readlink"] - before
            # (as for listings: a drop_caches elsewhere evicts the link and what it cached)
            if t.counts()["lookup"] == looked_up:
                break
    assert reads == (0 if cached else 4)


@pytest.mark.parametrize("dont_mask", [False, True])
def test_dont_mask_delivers_the_unmasked_mode_and_the_umask(
    toy: ToyFactory, dont_mask: bool
) -> None:
    with toy(*(["dont_mask"] if dont_mask else [])) as t:
        with umask(0o027):
            os.mkdir(t.mnt / "d", 0o777)
            os.close(os.open(t.mnt / "f", os.O_CREAT | os.O_WRONLY, 0o666))
        seen = t.stats()["last_mode"]
        shown = stat.S_IMODE(os.stat(t.mnt / "d").st_mode)
    if dont_mask:
        assert stat.S_IMODE(seen["mkdir"][0]) == 0o777
        assert stat.S_IMODE(seen["create"][0]) == 0o666
    else:
        assert stat.S_IMODE(seen["mkdir"][0]) == 0o750
        assert stat.S_IMODE(seen["create"][0]) == 0o640
    assert seen["mkdir"][1] == seen["create"][1] == 0o027
    assert shown == 0o750  # the toy applies the umask itself


def test_node_id_apart_from_st_ino(toy: ToyFactory) -> None:
    with toy("node_id") as t:
        (t.backing / "d").mkdir()
        (t.backing / "d" / "f").write_bytes(b"x")
        real = {name: os.stat(t.backing / name).st_ino for name in ("d", "d/f")}
        shown = {name: os.stat(t.mnt / name).st_ino for name in ("d", "d/f")}
        listed = {e.name: e.inode() for e in os.scandir(t.mnt / "d")}
        assert (t.mnt / "d" / "f").read_bytes() == b"x"
        stats = t.stats()
    assert shown == real
    assert listed == {"f": real["d/f"]}  # READDIRPLUS shows st_ino too
    node_ids = set(stats["nodes"].values())
    assert {stats["nodes"]["d"], stats["nodes"]["d/f"]}.isdisjoint(real.values())
    assert set(stats["seen_inodes"]) <= node_ids  # handlers only ever got node ids


def test_lseek_finds_data_and_holes(toy: ToyFactory) -> None:
    mib = 1 << 20
    with toy() as t:
        with open(t.backing / "sparse", "wb") as f:
            f.write(b"x" * 4096)
            f.seek(mib)
            f.write(b"y" * 4096)
        fd = os.open(t.mnt / "sparse", os.O_RDONLY)
        try:
            hole = os.lseek(fd, 0, os.SEEK_HOLE)
            data = os.lseek(fd, hole, os.SEEK_DATA)
            with pytest.raises(OSError) as info:
                os.lseek(fd, mib + 4096, os.SEEK_DATA)
        finally:
            os.close(fd)
        assert t.counts()["lseek"] == 3
    assert (hole, data) == (4096, mib)
    assert info.value.errno == errno.ENXIO


def test_copy_file_range_reaches_the_file_system(toy: ToyFactory) -> None:
    with toy() as t:
        (t.mnt / "a").write_bytes(b"0123456789" * 1000)
        (t.mnt / "b").write_bytes(b"")
        src = os.open(t.mnt / "a", os.O_RDONLY)
        dst = os.open(t.mnt / "b", os.O_WRONLY)
        try:
            copied = os.copy_file_range(src, dst, 5000, 10, 0)
        finally:
            os.close(src)
            os.close(dst)
        assert t.counts()["copy_file_range"] == 1
        assert (t.mnt / "b").read_bytes() == (b"0123456789" * 1000)[10:5010]
    assert copied == 5000


@pytest.mark.parametrize("noflush", [False, True])
def test_noflush_skips_flush_on_close(toy: ToyFactory, noflush: bool) -> None:
    with toy(*(["noflush"] if noflush else [])) as t:
        (t.backing / "f").write_bytes(b"x")
        for _ in range(3):
            with open(t.mnt / "f", "rb") as f:
                f.read()
        counts = t.counts()
    assert counts["open"] == 3
    assert counts.get("flush", 0) == (0 if noflush else 3)


def test_no_open_mode_passes_the_inode_in_place_of_the_file_handle(toy: ToyFactory) -> None:
    with toy("no_open") as t:
        (t.backing / "f").write_bytes(b"hello")
        for _ in range(3):
            with open(t.mnt / "f", "r+b") as f:
                assert f.read() == b"hello"
        with open(t.mnt / "f", "r+b") as f:
            f.write(b"J")
        stats = t.stats()
        assert (t.backing / "f").read_bytes() == b"Jello"
    counts = stats["counts"]
    assert counts["open"] == 1  # answered ENOSYS once; the kernel opens by itself since
    assert counts.get("release", 0) == 0
    assert stats["nodes"]["f"] in stats["seen_fhs"]  # read/write got the node as fh


class FileHandle(ctypes.Structure):
    _fields_ = (("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128))  # fmt: skip


AT_HANDLE_FID = 0x200


def name_to_handle_at(path: Path, flags: int = 0) -> FileHandle:
    handle = FileHandle(128, 0)
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(-100, os.fsencode(path), ctypes.byref(handle),
                               ctypes.byref(mount_id), flags) != 0:  # fmt: skip
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return handle


@pytest.mark.parametrize("no_export", [False, True])
def test_no_export_support_refuses_file_handles_but_not_fids(
    toy: ToyFactory, no_export: bool
) -> None:
    with toy(*(["no_export"] if no_export else [])) as t:
        (t.backing / "f").write_bytes(b"f")
        name_to_handle_at(t.mnt / "f", AT_HANDLE_FID)  # fanotify's handles: always
        if no_export:
            with pytest.raises(OSError) as info:
                name_to_handle_at(t.mnt / "f")
            assert info.value.errno == errno.EOPNOTSUPP
        else:
            name_to_handle_at(t.mnt / "f")
        assert (t.mnt / "f").read_bytes() == b"f"  # the amended INIT left the rest alone


def test_toy_mount_is_gone_after_use(toy: ToyFactory) -> None:
    with toy() as t:
        mnt: Path = t.mnt
        assert os.path.ismount(mnt)
    assert not os.path.ismount(mnt)


def test_getattr_through_an_open_file_can_refuse_a_cached_write(toy: ToyFactory) -> None:
    """With the write-back cache, a write(2) asks getattr through its file once the cached
    attributes are invalid, and fails with that getattr's error (patch 0008 tells getattr
    the file handle, so a stat(2) is never the one refused)."""
    with toy("writeback", "refuse_cached_writes") as t:
        path = t.mnt / "f"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            assert os.write(fd, b"a") == 1  # the attributes of the create are still valid
            t.invalidate("f")
            with pytest.raises(OSError) as info:
                os.write(fd, b"b")
            assert info.value.errno == errno.ENOSPC
            assert os.stat(path).st_size == 1  # a stat asks without the file: answered
        finally:
            os.close(fd)
        assert t.counts()["getattr_fh"] >= 1
