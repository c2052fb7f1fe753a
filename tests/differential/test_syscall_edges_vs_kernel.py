"""Edge cases of the calls xfstests and pjdfstest lean on, against kernel overlayfs, on
upper, copied-up and lower-only entries, with ``index`` off and on: xattr sizes and flags,
rename flags, mknod of each type, truncate edges, O_APPEND with pwrite, seekdir/telldir
and d_type, directory link counts, access(2) and opens by other users, sticky directories.

Each step runs on both mounts and must return the same (or fail with the same errno);
``Pair.finish`` then compares the trees. These matched when they were written (the
conformance probe): they keep matching.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from write_pairs import (
    ALL_FEATURES,
    DEFAULT_FEATURES,
    Op,
    Pair,
    op_chmod,
    op_mkdir,
    op_mknod,
    op_rename,
    op_rmdir,
    rich_stack,
    said_as,
)
from writeutil import Parent, summary

from unionfs.safecalls import RENAME_EXCHANGE, RENAME_NOREPLACE

RENAME_WHITEOUT = 4
_libc = ctypes.CDLL(None, use_errno=True)
_libc.getxattr.restype = ctypes.c_ssize_t
_libc.getxattr.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)
_libc.listxattr.restype = ctypes.c_ssize_t
_libc.listxattr.argtypes = (ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)
_libc.fdopendir.restype = ctypes.c_void_p
_libc.fdopendir.argtypes = (ctypes.c_int,)
_libc.readdir.restype = ctypes.c_void_p
_libc.readdir.argtypes = (ctypes.c_void_p,)
_libc.telldir.restype = ctypes.c_long
_libc.telldir.argtypes = (ctypes.c_void_p,)
_libc.seekdir.argtypes = (ctypes.c_void_p, ctypes.c_long)
_libc.closedir.argtypes = (ctypes.c_void_p,)
D_NAME, D_TYPE = 19, 18  # offsets in glibc's struct dirent64


def _checked(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def getxattr_size(path: bytes, name: bytes, size: int) -> Op:
    """getxattr(2) with a buffer of *size* (0: the size query): what it returns."""

    def run(root: int) -> object:
        with Parent(root, path) as p:
            buf = ctypes.create_string_buffer(max(size, 1))
            return _checked(_libc.getxattr(p.proc, name, buf if size else None, size))

    return run


def listxattr_short(path: bytes, size: int) -> Op:
    """listxattr(2) into a buffer of *size* > 0 (the size query itself differs: semantics.md)."""

    def run(root: int) -> object:
        with Parent(root, path) as p:
            buf = ctypes.create_string_buffer(size)
            return _checked(_libc.listxattr(p.proc, buf, size))

    return run


def setxattr(path: bytes, name: bytes, value: bytes, flags: int = 0) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.setxattr(p.proc, name, value, flags, follow_symlinks=bool(not p.name))
            return os.getxattr(p.proc, name, follow_symlinks=bool(not p.name))

    return run


def truncate(path: bytes, size: int, fd_flags: int | None = None) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            if fd_flags is None:
                os.truncate(p.proc, size)
            else:
                fd = os.open(p.name, fd_flags | os.O_NOFOLLOW, dir_fd=p.fd)
                try:
                    os.ftruncate(fd, size)
                finally:
                    os.close(fd)
            return summary(p.lstat())

    return run


def append_pwrite(path: bytes) -> Op:
    """pwrite on an O_APPEND descriptor appends (Linux), wherever it says to write."""

    def run(root: int) -> object:
        with Parent(root, path) as p:
            fd = os.open(p.name, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW, dir_fd=p.fd)
            try:
                os.pwrite(fd, b"ZZ", 0)
                size, at = os.fstat(fd).st_size, os.lseek(fd, 0, os.SEEK_CUR)
            finally:
                os.close(fd)
            fd = os.open(p.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=p.fd)
            try:
                return size, at, os.pread(fd, 4, 0), os.pread(fd, 4, size - 4)
            finally:
                os.close(fd)

    return run


def listing_with_seeks(path: bytes) -> Op:
    """readdir(3) of *path*: every (name, d_type), then the entry found again after
    seekdir(3) to positions telldir(3) gave, back and forth."""

    def run(root: int) -> object:
        with Parent(root, path) as p:
            fd = os.open(p.name or b".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                         dir_fd=p.fd)  # fmt: skip
        dirp = _libc.fdopendir(fd)
        if not dirp:
            os.close(fd)
            raise OSError(ctypes.get_errno(), "fdopendir")
        try:
            seen, marks = [], []
            while True:
                marks.append(_libc.telldir(dirp))
                ent = _libc.readdir(dirp)
                if not ent:
                    break
                seen.append((ctypes.string_at(ent + D_NAME),
                             ctypes.c_ubyte.from_address(ent + D_TYPE).value))  # fmt: skip
            again = []
            for i in (3, 1, len(seen) - 1, 0, len(seen)):
                if i < len(marks):
                    _libc.seekdir(dirp, marks[i])
                    ent = _libc.readdir(dirp)
                    got = ctypes.string_at(ent + D_NAME) if ent else None
                    again.append(got == (seen[i][0] if i < len(seen) else None))
            return sorted(seen), again
        finally:
            _libc.closedir(dirp)

    return run


def nlink(path: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            return (p.lstat() if p.name else os.stat(p.fd)).st_nlink

    return run


def as_user(path: bytes, uid: int, act: Callable[[bytes], object]) -> Op:
    """*act* on *path*'s name, in its parent directory, by a process of *uid* (and the
    group of that number, no other): its result or errno name."""

    def said(name: bytes) -> str:
        try:
            return repr(act(name))
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc.errno))

    def run(root: int) -> object:
        with Parent(root, path) as p:
            return said_as(p, uid, uid, said)

    return run


def _open_write(name: bytes) -> str:
    os.close(os.open(name, os.O_WRONLY | os.O_NOFOLLOW))
    return "opened"


def _create_in(name: bytes) -> None:
    os.close(os.open(name + b"/x", os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644))


ACCESS = [(os.R_OK, "r"), (os.W_OK, "w"), (os.X_OK, "x"), (os.F_OK, "f")]
STEPS: list[tuple[str, Op]] = [
    # xattrs: sizes, the flags, long names and values, odd namespaces and file types
    ("getxattr size query d/top (lower)", getxattr_size(b"d/top", b"user.a", 0)),
    ("setxattr f user.v", setxattr(b"f", b"user.v", b"12345")),
    ("getxattr f, buffer too small", getxattr_size(b"f", b"user.v", 2)),
    ("listxattr f, buffer too small", listxattr_short(b"f", 3)),
    ("setxattr CREATE over an existing one", setxattr(b"f", b"user.v", b"x", os.XATTR_CREATE)),
    ("setxattr CREATE, lower", setxattr(b"d/top", b"user.a", b"x", os.XATTR_CREATE)),
    ("setxattr REPLACE a missing one", setxattr(b"f", b"user.no", b"x", os.XATTR_REPLACE)),
    ("setxattr REPLACE, lower", setxattr(b"d/below", b"user.no", b"x", os.XATTR_REPLACE)),
    ("setxattr REPLACE an existing one", setxattr(b"f", b"user.v", b"y", os.XATTR_REPLACE)),
    ("setxattr a 255-byte name", setxattr(b"f", b"user." + b"n" * 250, b"x")),
    ("setxattr a 256-byte name", setxattr(b"f", b"user." + b"n" * 251, b"x")),
    ("setxattr an empty name", setxattr(b"f", b"", b"x")),
    ("setxattr an unknown namespace", setxattr(b"f", b"foo.bar", b"x")),
    ("setxattr a 65537-byte value", setxattr(b"f", b"user.big", b"v" * 65537)),
    ("setxattr a 65536-byte value", setxattr(b"f", b"user.big", b"v" * 65536)),
    ("setxattr user.* on a symlink", setxattr(b"s", b"user.x", b"v")),
    ("mknod fifo", op_mknod(b"fifo", stat.S_IFIFO | 0o600, 0)),
    ("setxattr user.* on a fifo", setxattr(b"fifo", b"user.x", b"v")),
    # mknod of each type
    ("mknod, no type (a file)", op_mknod(b"n0", 0o644, 0)),
    ("mknod S_IFREG", op_mknod(b"n1", stat.S_IFREG | 0o600, 0)),
    ("mknod S_IFSOCK", op_mknod(b"n2", stat.S_IFSOCK | 0o600, 0)),
    ("mknod S_IFCHR", op_mknod(b"n3", stat.S_IFCHR | 0o600, os.makedev(1, 7))),
    ("mknod S_IFBLK", op_mknod(b"n4", stat.S_IFBLK | 0o600, os.makedev(7, 1))),
    ("mknod S_IFDIR", op_mknod(b"n5", stat.S_IFDIR | 0o755, 0)),
    ("mknod S_IFLNK", op_mknod(b"n6", stat.S_IFLNK | 0o777, 0)),
    ("mknod, a bad type", op_mknod(b"n7", 0o170000 | 0o644, 0)),
    ("mknod over a lower file", op_mknod(b"f", stat.S_IFIFO | 0o600, 0)),
    ("mknod over a whiteout", op_mknod(b"gone", stat.S_IFIFO | 0o600, 0)),
    # truncate
    ("truncate to -1", truncate(b"n1", -1)),
    ("truncate a directory", truncate(b"d", 0)),
    ("truncate past the largest size", truncate(b"n1", 1 << 62)),
    ("ftruncate a read-only descriptor (lower)", truncate(b"d/top", 0, os.O_RDONLY)),
    ("ftruncate a directory", truncate(b"d", 0, os.O_RDONLY | os.O_DIRECTORY)),
    ("O_APPEND pwrite, lower", append_pwrite(b"d/below")),
    # link counts of directories
    ("nlink of the root", nlink(b"")),
    ("nlink of a merged dir", nlink(b"d")),
    ("nlink of an opaque dir", nlink(b"o")),
    ("nlink of a lower dir", nlink(b"ld")),
    ("mkdir d/n1", op_mkdir(b"d/n1", 0o755)),
    ("nlink of d", nlink(b"d")),
    ("mkdir ld/n1", op_mkdir(b"ld/n1", 0o755)),
    ("nlink of ld (copied up)", nlink(b"ld")),
    ("rename ld/n1 d/n2", op_rename(b"ld/n1", b"d/n2", 0)),
    ("nlink of ld", nlink(b"ld")),
    ("rmdir d/n1", op_rmdir(b"d/n1")),
    ("nlink of d", nlink(b"d")),
    ("rename a lower dir (d/sub o/sub)", op_rename(b"d/sub", b"o/sub", 0)),
    ("nlink of o", nlink(b"o")),
    # listings, positions and d_type
    ("readdir root", listing_with_seeks(b"")),
    ("readdir a merged dir", listing_with_seeks(b"d")),
    ("readdir an opaque dir", listing_with_seeks(b"o")),
    ("readdir a copied-up dir", listing_with_seeks(b"ld")),
    # other users: access(2), opens for writing, sticky directories
    *[
        (f"access {path!r} {name} as {uid}", as_user(path, uid, lambda n, m=m: os.access(n, m)))
        for path in (b"f", b"d/top", b"ld/lf", b"n1", b"d", b"ld")
        for uid in (1000, 65534)
        for m, name in ACCESS
    ],
    ("open O_WRONLY a lower file, not its owner", as_user(b"d/top", 65534, _open_write)),
    ("open O_WRONLY a lower file, its owner", as_user(b"ld/lf", 1000, _open_write)),
    ("mkdir st", op_mkdir(b"st", 0o755)),
    ("chmod st 1777", op_chmod(b"st", 0o1777)),
    ("create st/x as 1000", as_user(b"st", 1000, _create_in)),
    ("unlink st/x as 65534", as_user(b"st", 65534, lambda n: os.unlink(n + b"/x"))),
    ("rename st/x as 65534", as_user(b"st", 65534, lambda n: os.rename(n + b"/x", n + b"/y"))),
    ("unlink st/x as its owner", as_user(b"st", 1000, lambda n: os.unlink(n + b"/x"))),
    ("chmod d 1777 (merged)", op_chmod(b"d", 0o1777)),
    ("unlink d/below as 65534", as_user(b"d", 65534, lambda n: os.unlink(n + b"/below"))),
    ("chmod ld 1777", op_chmod(b"ld", 0o1777)),
    ("unlink ld/lf as 65534", as_user(b"ld", 65534, lambda n: os.unlink(n + b"/lf"))),
    ("unlink ld/lf as its owner", as_user(b"ld", 1000, lambda n: os.unlink(n + b"/lf"))),
    # rename flags
    ("rename NOREPLACE onto a name", op_rename(b"f", b"h1", RENAME_NOREPLACE)),
    ("rename NOREPLACE onto a whiteout", op_rename(b"d/top", b"gone", RENAME_NOREPLACE)),
    ("rename EXCHANGE two lower files", op_rename(b"h1", b"h2", RENAME_EXCHANGE)),
    ("rename EXCHANGE upper and lower", op_rename(b"n0", b"d/below", RENAME_EXCHANGE)),
    ("rename EXCHANGE with nothing", op_rename(b"h2", b"nothing", RENAME_EXCHANGE)),
    ("rename WHITEOUT", op_rename(b"h2", b"w", RENAME_WHITEOUT)),
    ("rename NOREPLACE|EXCHANGE", op_rename(b"h2", b"h1", RENAME_NOREPLACE | RENAME_EXCHANGE)),
    ("rename, an unknown flag", op_rename(b"h2", b"h1", 8)),
    ("rename a lower dir over a non-empty one", op_rename(b"ld", b"d", 0)),
    ("rename a dir into itself", op_rename(b"d", b"d/n2/x", 0)),
    ("rename onto another name of the file", op_rename(b"h1", b"h2", 0)),
    ("rename EXCHANGE a file and a lower dir", op_rename(b"h1", b"ld", RENAME_EXCHANGE)),
]


@pytest.mark.parametrize("features", [DEFAULT_FEATURES, ALL_FEATURES])
def test_syscall_edges_match_kernel(features: str) -> None:
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-edges-")), rich_stack(),
                unionfs_forms=False, features=features)  # fmt: skip
    pair.check_reads = False  # the listings are read where they matter, with d_type
    pair.run(STEPS)
