"""The only place that walks paths inside a layer.

A path here is relative to a layer's root, as ``bytes`` without a leading slash (``b""`` is
the root). Every path is resolved by ``openat2`` with ``RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS``: no component may be a symlink and nothing may leave the root, so a
symlink inside a layer is only ever shown, never followed. Final components are examined
with ``fstatat(AT_SYMLINK_NOFOLLOW)`` relative to an ``O_PATH`` descriptor of their
directory. Those directory descriptors are kept in a small LRU cache shared by all layers.
A lower layer (``lower=True``) is only read, and reading it never changes its atime.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from collections.abc import Iterator

from unionfs.dirfds import DirFdCache as DirFdCache
from unionfs.mountattrs import noatime_clone
from unionfs.safecalls import RENAME_EXCHANGE as RENAME_EXCHANGE
from unionfs.safecalls import RENAME_NOREPLACE as RENAME_NOREPLACE
from unionfs.safecalls import openat2 as openat2
from unionfs.safecalls import renameat2

# A relative path handed to one syscall stays below this; longer ones are walked in pieces,
# so paths that ext4 accepts through repeated chdir are accepted here too.
_CHUNK = 3800


def split(path: bytes) -> tuple[bytes, bytes]:
    """``b"a/b/c"`` -> ``(b"a/b", b"c")``; ``b"c"`` -> ``(b"", b"c")``."""
    head, _, tail = path.rpartition(b"/")
    return head, tail


def join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def proc_fd_path(fd: int) -> str:
    """A path naming the inode behind *fd* itself (for xattr calls on O_PATH descriptors)."""
    return f"/proc/self/fd/{fd}"


_layer_ids = itertools.count(1)
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)
_DOTS = (b"", b".", b"..")


def _check_final(name: bytes, path: bytes) -> None:
    """A final component is resolved by an *at() call, outside openat2's guard: "." and
    ".." (and an empty name) would name another directory than the one asked for."""
    if name in _DOTS:
        raise OSError(errno.EINVAL, "not a name inside a layer", os.fsdecode(path))


class LayerDir:
    """One layer directory, accessed only through fd-relative, symlink-refusing calls.

    Methods that answer "is it there" return None for a missing entry; everything else
    raises ``OSError`` with the real errno.

    A *lower* layer is read without touching its atimes, as kernel overlayfs reads its
    lowers: through a private noatime clone of its mount where this process may make one
    (root), else with ``O_NOATIME`` on every file and directory it reads, where the kernel
    allows that (the file's owner, or CAP_FOWNER: EPERM otherwise, and then it is read
    without). A symlink's target is then the one read that may still move an atime: no
    flag spares ``readlink``.

    With ``noatime`` set (the upper layer), everything opened here, for reading or
    writing, gets ``O_NOATIME`` on the same terms: the upper's atimes follow the overlay's
    own flags (``union.atime``), not the reads of the daemon.
    """

    noatime = False

    def __init__(
        self, root: str, cache: DirFdCache, layer_id: int | None = None, *, lower: bool = False
    ) -> None:
        self.root = root
        # Unique per LayerDir, whatever the caller numbers it: stacks may share one cache.
        self.layer_id = next(_layer_ids)
        self._cache = cache
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dev = os.fstat(self.root_fd).st_dev
        self._noatime = 0  # O_NOATIME on reads, for a lower without its noatime clone
        if lower:
            clone = noatime_clone(self.root_fd)
            if clone is None:
                self._noatime = os.O_NOATIME
            else:
                os.close(self.root_fd)
                self.root_fd = clone

    def close(self) -> None:
        self._cache.forget(self.layer_id, b"")
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
            base, rest = self.root_fd, path
            if len(path) > _CHUNK:
                cut = path.rfind(b"/", 0, _CHUNK)
                if cut > 0:
                    base, rest = self.dir_fd(path[:cut]), path[cut + 1 :]
            # No O_NOFOLLOW: RESOLVE_NO_SYMLINKS already refuses a symlink, with ELOOP.
            fd = openat2(base, rest, os.O_PATH | os.O_DIRECTORY)
            self._cache.put(key, fd)
        return fd

    def at(self, path: bytes) -> tuple[int, bytes]:
        """(descriptor of the parent directory, final name) for an fd-relative call."""
        parent, name = split(path)
        _check_final(name, path)
        return self.dir_fd(parent), name

    def forget(self, path: bytes) -> None:
        self._cache.forget(self.layer_id, path)

    def scandir(self, path: bytes) -> Iterator[tuple[bytes, os.stat_result]]:
        """Every entry of directory *path* with its lstat, in on-disk order."""
        base, name = self.at(path) if path else (self.root_fd, b".")
        fd = self._open_read(base, name, os.O_RDONLY | os.O_DIRECTORY)
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
        if name in _DOTS:
            return None
        try:
            return os.stat(name, dir_fd=self.dir_fd(parent), follow_symlinks=False)
        except OSError as exc:
            if exc.errno in _ABSENT:
                return None
            raise

    def readlink(self, path: bytes) -> bytes:
        base, name = self.at(path)
        return os.readlink(name, dir_fd=base)

    def open(self, path: bytes, flags: int, mode: int = 0) -> int:
        """Open *path* (never through a symlink: a symlink gives ELOOP)."""
        base, name = self.at(path) if path else (self.root_fd, b".")
        if flags & (os.O_ACCMODE | os.O_PATH | os.O_CREAT) == os.O_RDONLY:
            return self._open_read(base, name, flags | os.O_NOFOLLOW)
        return self._openat2(base, name, flags | os.O_NOFOLLOW, mode, self._upper_noatime())

    def _open_read(self, base: int, name: bytes, flags: int) -> int:
        """Open for reading; reads leave the atime alone (see the class)."""
        return self._openat2(base, name, flags, 0, self._noatime or self._upper_noatime())

    def _upper_noatime(self) -> int:
        return os.O_NOATIME if self.noatime else 0

    def _openat2(self, base: int, name: bytes, flags: int, mode: int, noatime: int) -> int:
        if noatime and not flags & os.O_PATH:
            try:
                return openat2(base, name, flags | noatime, mode)
            except PermissionError as exc:
                if exc.errno != errno.EPERM:
                    raise
                # Not the owner and no CAP_FOWNER: the kernel refuses O_NOATIME alone.
        return openat2(base, name, flags, mode)

    def opath(self, path: bytes) -> int:
        """An ``O_PATH`` descriptor of *path* itself, whatever its type; the caller closes it."""
        return self.open(path, os.O_PATH)

    # -- xattrs --------------------------------------------------------------------------
    def _xattr_path(self, path: bytes) -> str:
        """A path for the l*xattr calls naming *path* itself: its directory through the
        /proc magic link of a descriptor (confined like every walk here), then its name,
        which the l* calls do not follow. The root is the magic link alone, which the
        calls must follow (to the directory, never further: magic links end there)."""
        if not path:
            return proc_fd_path(self.root_fd)
        base, name = self.at(path)
        return proc_fd_path(base) + "/" + os.fsdecode(name)

    def getxattr(self, path: bytes, name: bytes) -> bytes | None:
        """The value of xattr *name* of *path* itself, or None when it has none."""
        try:
            return os.getxattr(self._xattr_path(path), name, follow_symlinks=not path)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTSUP):
                return None
            raise

    def listxattr(self, path: bytes) -> list[bytes]:
        try:
            names = os.listxattr(self._xattr_path(path), follow_symlinks=not path)
        except OSError as exc:
            if exc.errno == errno.ENOTSUP:
                return []
            raise
        return [os.fsencode(n) for n in names]

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

    # -- changes (only ever called on the upper layer and the workdir) --------------------
    def mkdir(self, path: bytes, mode: int) -> None:
        base, name = self.at(path)
        os.mkdir(name, mode, dir_fd=base)

    def mknod(self, path: bytes, mode: int, rdev: int = 0) -> None:
        base, name = self.at(path)
        os.mknod(name, mode, rdev, dir_fd=base)

    def symlink(self, target: bytes, path: bytes) -> None:
        base, name = self.at(path)
        os.symlink(target, name, dir_fd=base)

    def link(self, existing: bytes, path: bytes) -> None:
        src_base, src_name = self.at(existing)
        base, name = self.at(path)
        os.link(src_name, name, src_dir_fd=src_base, dst_dir_fd=base, follow_symlinks=False)

    def create(self, path: bytes, flags: int, mode: int) -> int:
        """Create a new regular file (O_EXCL) and return it open with *flags*."""
        return self.open(path, flags | os.O_CREAT | os.O_EXCL, mode)

    def tmpfile(self, path: bytes, flags: int, mode: int) -> int:
        """A new regular file with no name, in directory *path*, open with *flags* (O_RDWR
        or O_WRONLY); ``link_open`` can name it later (it is made without O_EXCL)."""
        base, name = self.at(path) if path else (self.root_fd, b".")
        return openat2(base, name, flags & ~os.O_EXCL | os.O_TMPFILE | os.O_NOFOLLOW, mode)

    def link_open(self, fd: int, path: bytes) -> None:
        """Name *path* for the file open as *fd* (its ``/proc`` magic link ends at the file
        itself: nothing is followed out of the layer)."""
        base, name = self.at(path)
        os.link(proc_fd_path(fd), name, dst_dir_fd=base, follow_symlinks=True)

    def unlink(self, path: bytes) -> None:
        base, name = self.at(path)
        os.unlink(name, dir_fd=base)

    def rmdir(self, path: bytes) -> None:
        self.forget(path)
        base, name = self.at(path)
        os.rmdir(name, dir_fd=base)

    def remove_tree(self, path: bytes) -> None:
        """Remove *path* and everything below it, never following a symlink."""
        st = self.lstat(path)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            for name, _ in list(self.scandir(path)):
                self.remove_tree(join(path, name))
            self.rmdir(path)
        else:
            self.unlink(path)

    def rename_to(self, path: bytes, other: LayerDir, other_path: bytes, flags: int = 0) -> None:
        """Rename *path* of this layer to *other_path* of *other* (same filesystem)."""
        src_base, src_name = self.at(path)
        dst_base, dst_name = other.at(other_path)
        renameat2(src_base, src_name, dst_base, dst_name, flags)
        self.forget(path)
        other.forget(other_path)

    def _by_inode(self, path: bytes) -> tuple[int, str]:
        fd = self.opath(path)
        return fd, proc_fd_path(fd)

    def chmod(self, path: bytes, mode: int) -> None:
        fd, where = self._by_inode(path)
        try:
            os.chmod(where, mode)
        finally:
            os.close(fd)

    def chown(self, path: bytes, uid: int, gid: int) -> None:
        """Change the owner of *path* itself (a symlink's own owner, like lchown)."""
        fd, where = self._by_inode(path)
        try:
            os.chown(where, uid, gid)
        finally:
            os.close(fd)

    def utime(self, path: bytes, ns: tuple[int, int]) -> None:
        if not path:
            os.utime(proc_fd_path(self.root_fd), ns=ns)  # the magic link ends at the root
            return
        base, name = self.at(path)
        os.utime(name, ns=ns, dir_fd=base, follow_symlinks=False)

    def setxattr(self, path: bytes, name: bytes, value: bytes, flags: int = 0) -> None:
        fd, where = self._by_inode(path)
        try:
            os.setxattr(where, name, value, flags)
        finally:
            os.close(fd)

    def removexattr(self, path: bytes, name: bytes) -> None:
        fd, where = self._by_inode(path)
        try:
            os.removexattr(where, name)
        finally:
            os.close(fd)
