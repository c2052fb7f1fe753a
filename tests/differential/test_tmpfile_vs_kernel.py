"""open(2) with O_TMPFILE, and linkat(2) naming such a file, against kernel overlayfs (which
makes it in the upper copy of the directory, Linux 6.7+).

Each case runs on both mounts and compares what each step returned; ``Pair.finish`` then
compares the trees and mounts the kernel over unionfs's upper (nothing unnamed is left).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import stat
import tempfile
from pathlib import Path

import pytest
from write_pairs import ALL_FEATURES, DEFAULT_FEATURES, Pair, rich_stack
from writeutil import Parent, summary

from unionfs.fuse import features

FS_IOC_GETFLAGS = 0x80086601
AT_EMPTY_PATH = 0x1000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.linkat.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)

pytestmark = pytest.mark.skipif(
    "tmpfile" not in features.available(), reason="the binding has no tmpfile handler"
)


def _tmpfile(root: int, directory: bytes, flags: int = os.O_RDWR, mode: int = 0o640) -> int:
    with Parent(root, directory + b"/x" if directory else b"x") as p:
        return os.open(b".", os.O_TMPFILE | flags, mode, dir_fd=p.fd)


def _name(root: int, fd: int, path: bytes) -> object:
    """linkat(2) through the descriptor's /proc link (AT_SYMLINK_FOLLOW), as without
    CAP_DAC_READ_SEARCH; the new name's summary."""
    with Parent(root, path) as p:
        os.link(f"/proc/self/fd/{fd}", p.name, dst_dir_fd=p.fd, follow_symlinks=True)
        return summary(p.lstat())


def _name_empty_path(root: int, fd: int, path: bytes) -> object:
    """linkat(fd, "", dir, name, AT_EMPTY_PATH), as a caller with CAP_DAC_READ_SEARCH."""
    with Parent(root, path) as p:
        if _libc.linkat(fd, b"", p.fd, p.name, AT_EMPTY_PATH) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return summary(p.lstat())


def made_written_named(directory: bytes, name: bytes, flags: int = os.O_RDWR,
                       empty_path: bool = False) -> object:  # fmt: skip
    def run(root: int) -> object:
        fd = _tmpfile(root, directory, flags)
        try:
            os.write(fd, b"unnamed data")
            unnamed = summary(os.fstat(fd))
            named = (_name_empty_path if empty_path else _name)(root, fd, name)
            os.write(fd, b", then named")
            return unnamed, named, summary(os.fstat(fd))
        finally:
            os.close(fd)

    return run


def changed_before_named(directory: bytes, name: bytes) -> object:
    """fchmod, fchown, futimens and fsetxattr while it has no name, then named."""

    def run(root: int) -> object:
        fd = _tmpfile(root, directory, mode=0o600)
        try:
            os.fchmod(fd, 0o4755)
            os.fchown(fd, 1000, 65534)
            os.utime(fd, ns=(1_000_000_000, 2_000_000_000))
            os.setxattr(fd, b"user.t", b"1")
            st = os.fstat(fd)
            named = _name(root, fd, name)
            return summary(st), st.st_mtime_ns, named, os.getxattr(fd, b"user.t")
        finally:
            os.close(fd)

    return run


def read_unnamed(directory: bytes) -> object:
    """Its xattrs, its flags (FS_IOC_GETFLAGS) and its data through a second open of
    ``/proc/self/fd``, while it has no name."""

    def run(root: int) -> object:
        fd = _tmpfile(root, directory)
        try:
            os.write(fd, b"data")
            os.setxattr(fd, b"user.u", b"2")
            flags = bytearray(4)
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
            again = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
            try:
                data = os.read(again, 10)
            finally:
                os.close(again)
            return os.getxattr(fd, b"user.u"), sorted(os.listxattr(fd)), bytes(flags), data
        finally:
            os.close(fd)

    return run


def never_named(directory: bytes) -> object:
    def run(root: int) -> object:
        fd = _tmpfile(root, directory)
        try:
            os.write(fd, b"gone at close")
            return summary(os.fstat(fd))
        finally:
            os.close(fd)

    return run


def refused(directory: bytes, flags: int) -> object:
    def run(root: int) -> object:
        os.close(_tmpfile(root, directory, flags))
        return "made"

    return run


def excl_named(directory: bytes, name: bytes) -> object:
    """O_EXCL: the file may never get a name (the VFS refuses the link)."""

    def run(root: int) -> object:
        fd = _tmpfile(root, directory, os.O_RDWR | os.O_EXCL)
        try:
            return _name(root, fd, name)
        finally:
            os.close(fd)

    return run


def read(path: bytes) -> object:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            fd = os.open(p.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=p.fd)
            try:
                return os.read(fd, 100)
            finally:
                os.close(fd)

    return run


STEPS = [
    ("in a lower directory, named there", made_written_named(b"d/sub", b"d/sub/t1")),
    ("in the root, named in a lower directory", made_written_named(b"", b"ld/t2")),
    ("write-only, named over a whiteout", made_written_named(b"d", b"gone", os.O_WRONLY)),
    ("named where a name is", made_written_named(b"d", b"f")),
    ("named by AT_EMPTY_PATH", made_written_named(b"o", b"o/e", empty_path=True)),
    ("in a set-gid lower directory", made_written_named(b"ld", b"ld/t3")),
    ("changed before it is named", changed_before_named(b"o", b"o/t4")),
    ("read while unnamed", read_unnamed(b"d/sub")),
    ("never named", never_named(b"d")),
    ("O_EXCL, then linked", excl_named(b"d", b"d/t5")),
    ("read-only", refused(b"d", os.O_RDONLY)),
    ("in a file", refused(b"f", os.O_RDWR)),
    ("in a symlink to a directory", refused(b"s", os.O_RDWR)),
    ("read d/sub/t1", read(b"d/sub/t1")),
    ("read ld/t2", read(b"ld/t2")),
    ("read gone", read(b"gone")),
    ("read o/e", read(b"o/e")),
]


@pytest.mark.parametrize("features", [DEFAULT_FEATURES, ALL_FEATURES])
def test_o_tmpfile_matches_kernel(features: str) -> None:
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-tmpfile-")), rich_stack(),
                unionfs_forms=False, features=features)  # fmt: skip
    old = os.umask(0o022)
    try:
        pair.run(STEPS)
    finally:
        os.umask(old)
    assert stat.S_IMODE(0o640 & ~0o022) == 0o640
