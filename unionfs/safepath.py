"""The only place that walks paths inside a layer.

A path here is relative to a layer's root, as ``bytes`` without a leading slash (``b""`` is
the root). Every path is resolved by ``openat2`` with ``RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS``: no component may be a symlink and nothing may leave the root, so a
symlink inside a layer is only ever shown, never followed. Final components are examined
with ``fstatat(AT_SYMLINK_NOFOLLOW)`` relative to an ``O_PATH`` descriptor of their
directory. Those directory descriptors are kept in a small LRU cache shared by all layers.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections import OrderedDict
from collections.abc import Iterator

_SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


def openat2(dir_fd: int, path: bytes, flags: int, mode: int = 0, resolve: int = _RESOLVE) -> int:
    """``openat2(2)``: open *path* below *dir_fd* without following any symlink."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    while True:
        fd = _libc.syscall(
            _SYS_OPENAT2,
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(path or b"."),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err in (errno.EINTR, errno.EAGAIN):
            continue
        raise OSError(err, os.strerror(err), os.fsdecode(path))


def split(path: bytes) -> tuple[bytes, bytes]:
    """``b"a/b/c"`` -> ``(b"a/b", b"c")``; ``b"c"`` -> ``(b"", b"c")``."""
    head, _, tail = path.rpartition(b"/")
    return head, tail


def join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def proc_fd_path(fd: int) -> str:
    """A path naming the inode behind *fd* itself (for xattr calls on O_PATH descriptors)."""
    return f"/proc/self/fd/{fd}"


class DirFdCache:
    """An LRU of ``O_PATH`` directory descriptors, keyed by (layer id, relative path).

    Invariant: every cached descriptor is open and owned by the cache. Callers must not
    close a descriptor they got from it, and must call ``forget`` after renaming or
    removing a directory of a writable layer, or a cached descriptor would name the moved
    directory under its old path.
    """

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._fds: OrderedDict[tuple[int, bytes], int] = OrderedDict()

    def get(self, key: tuple[int, bytes]) -> int | None:
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
        return fd

    def put(self, key: tuple[int, bytes], fd: int) -> None:
        old = self._fds.pop(key, None)
        if old is not None:
            os.close(old)
        self._fds[key] = fd
        while len(self._fds) > self.capacity:
            _, victim = self._fds.popitem(last=False)
            os.close(victim)

    def forget(self, layer_id: int, path: bytes) -> None:
        """Drop *path* and everything below it for one layer."""
        prefix = path + b"/"
        doomed = [
            k for k in self._fds if k[0] == layer_id and (k[1] == path or k[1].startswith(prefix))
        ]
        for key in doomed:
            os.close(self._fds.pop(key))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)


class LayerDir:
    """One layer directory, accessed only through fd-relative, symlink-refusing calls.

    Methods that answer "is it there" return None for a missing entry; everything else
    raises ``OSError`` with the real errno.
    """

    def __init__(self, root: str, cache: DirFdCache, layer_id: int) -> None:
        self.root = root
        self.layer_id = layer_id
        self._cache = cache
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dev = os.fstat(self.root_fd).st_dev

    def close(self) -> None:
        os.close(self.root_fd)

    def __repr__(self) -> str:
        return f"LayerDir({self.root!r})"

    # -- directories ---------------------------------------------------------------------
    def dir_fd(self, path: bytes) -> int:
        """A cached ``O_PATH`` descriptor of directory *path*; do not close it."""
        if not path:
            return self.root_fd
        key = (self.layer_id, path)
        fd = self._cache.get(key)
        if fd is None:
            fd = openat2(self.root_fd, path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
            self._cache.put(key, fd)
        return fd

    def forget(self, path: bytes) -> None:
        self._cache.forget(self.layer_id, path)

    def scandir(self, path: bytes) -> Iterator[tuple[bytes, os.stat_result]]:
        """Every entry of directory *path* with its lstat, in on-disk order."""
        fd = openat2(self.root_fd, path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed while we listed
                    yield os.fsencode(entry.name), st
        finally:
            os.close(fd)

    # -- single entries ------------------------------------------------------------------
    def lstat(self, path: bytes) -> os.stat_result | None:
        if not path:
            return os.fstat(self.root_fd)
        parent, name = split(path)
        try:
            return os.stat(name, dir_fd=self.dir_fd(parent), follow_symlinks=False)
        except OSError as exc:
            if exc.errno in _ABSENT:
                return None
            raise

    def readlink(self, path: bytes) -> bytes:
        parent, name = split(path)
        return os.readlink(name, dir_fd=self.dir_fd(parent))

    def open(self, path: bytes, flags: int, mode: int = 0) -> int:
        """Open *path* (never through a symlink: a symlink gives ELOOP)."""
        return openat2(self.root_fd, path, flags | os.O_NOFOLLOW, mode)

    def opath(self, path: bytes) -> int:
        """An ``O_PATH`` descriptor of *path* itself, whatever its type; the caller closes it."""
        return openat2(self.root_fd, path, os.O_PATH | os.O_NOFOLLOW)

    # -- xattrs --------------------------------------------------------------------------
    def getxattr(self, path: bytes, name: bytes) -> bytes | None:
        """The value of xattr *name* of *path* itself, or None when it has none."""
        fd = self.opath(path)
        try:
            return os.getxattr(proc_fd_path(fd), name)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTSUP):
                return None
            raise
        finally:
            os.close(fd)

    def listxattr(self, path: bytes) -> list[bytes]:
        fd = self.opath(path)
        try:
            return [os.fsencode(n) for n in os.listxattr(proc_fd_path(fd))]
        except OSError as exc:
            if exc.errno == errno.ENOTSUP:
                return []
            raise
        finally:
            os.close(fd)

    def dir_getxattr(self, path: bytes, name: bytes) -> bytes | None:
        """Like getxattr for a directory, through the cached descriptor (no open)."""
        try:
            return os.getxattr(proc_fd_path(self.dir_fd(path)), name)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTSUP):
                return None
            raise

    def statvfs(self) -> os.statvfs_result:
        return os.statvfs(self.root_fd)
