"""UnionOperations, not mounted: fallocate, lseek, copy_file_range and the flags ioctl on
the descriptors and files they must use, and their refusals."""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from layers import Symlink

from unionfs.fuse import fileattr
from unionfs.fuse.ops import UnionOperations

from .conftest import MakeOps
from .driver import CTX, ROOT, call, fuse_errno, lookup_ino, upper_tree


def opened(ops: UnionOperations, name: bytes, flags: int) -> int:
    return int(call(ops.open, lookup_ino(ops, ROOT, name), flags, CTX).fh)


def test_fallocate_copies_up_and_acts_on_the_upper_copy(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "lower"}, upper={})
    fh = opened(ops, b"f", os.O_RDWR)
    call(ops.fallocate, fh, 0, 0, 100)
    call(ops.release, fh)
    assert upper_tree(ops)["f"] == "lower" + "\0" * 95


def test_fallocate_needs_a_handle_open_for_writing(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "lower"}, upper={})
    fh = opened(ops, b"f", os.O_RDONLY)
    assert fuse_errno(ops.fallocate, fh, 0, 0, 100) == errno.EBADF
    assert fuse_errno(ops.fallocate, fh + 100, 0, 0, 100) == errno.EBADF
    call(ops.release, fh)


def test_lseek_answers_data_and_holes_and_refuses_other_whence(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "x" * 10}, upper={})
    fh = opened(ops, b"f", os.O_RDONLY)
    assert call(ops.lseek, fh, 0, os.SEEK_DATA) == 0
    assert call(ops.lseek, fh, 0, os.SEEK_HOLE) == 10
    assert fuse_errno(ops.lseek, fh, 10, os.SEEK_DATA) == errno.ENXIO
    assert fuse_errno(ops.lseek, fh, 0, os.SEEK_SET) == errno.EINVAL
    call(ops.release, fh)


def test_copy_file_range_into_a_file_open_for_writing(make_ops: MakeOps) -> None:
    ops = make_ops({"src": "0123456789", "dst": ""}, upper={})
    src, dst = opened(ops, b"src", os.O_RDONLY), opened(ops, b"dst", os.O_RDWR)
    assert call(ops.copy_file_range, src, 2, dst, 0, 5, 0) == 5
    assert fuse_errno(ops.copy_file_range, dst, 0, src, 0, 5, 0) == errno.EBADF
    assert fuse_errno(ops.copy_file_range, src, 0, dst, 0, 5, 1) == errno.EINVAL
    call(ops.release, src)
    call(ops.release, dst)
    assert upper_tree(ops)["dst"] == "23456"


def ioctl(ops: UnionOperations, ino: int, cmd: int, value: bytes = b"") -> bytes:
    size = 4 if cmd in (fileattr.FS_IOC_GETFLAGS, fileattr.FS_IOC_SETFLAGS) else 28
    out = 0 if value else size
    return bytes(call(ops.ioctl, ino, 0, cmd, 0, value, out, 0, CTX))


def test_getflags_asks_the_lower_file_and_setflags_copies_up(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "lower"}, upper={})
    ino = lookup_ino(ops, ROOT, b"f")
    flags = struct.unpack("I", ioctl(ops, ino, fileattr.FS_IOC_GETFLAGS))[0]
    assert "f" not in upper_tree(ops)
    nodump = 0x40  # FS_NODUMP_FL: changes nothing else
    ioctl(ops, ino, fileattr.FS_IOC_SETFLAGS, struct.pack("I", flags | nodump))
    assert upper_tree(ops)["f"] == "lower"
    upper = ops.stack.upper
    assert upper is not None
    fd = upper.open(b"f", os.O_RDONLY)
    try:
        got = struct.unpack("I", fcntl.ioctl(fd, fileattr.FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    finally:
        os.close(fd)
    assert got & nodump
    assert struct.unpack("I", ioctl(ops, ino, fileattr.FS_IOC_GETFLAGS))[0] & nodump
    assert len(ioctl(ops, ino, fileattr.FS_IOC_FSGETXATTR)) == 28


def test_ioctl_refuses_other_commands_and_other_kinds(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "x", "l": Symlink("f")}, upper={})
    f, link = lookup_ino(ops, ROOT, b"f"), lookup_ino(ops, ROOT, b"l")
    assert fuse_errno(ops.ioctl, f, 0, 0x5401, 0, b"", 4, 0, CTX) == errno.ENOTTY  # TCGETS
    getflags = fileattr.FS_IOC_GETFLAGS
    assert fuse_errno(ops.ioctl, link, 0, getflags, 0, b"", 4, 0, CTX) == errno.ENOTTY
