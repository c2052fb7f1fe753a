"""Open files and open directories.

A file handle uses one descriptor of the backing file in the layer that held it when it was
opened; handles of one inode opened alike (same layer side, same backing flags) share one
descriptor, counted, so the daemon's descriptors grow with the files open, not the opens
(reads and writes are positional: no handle depends on a shared file offset). A directory
handle owns a snapshot of the merged listing, taken at the first readdir from offset 0:
offsets are positions in that snapshot, so a directory read in several requests costs one
merge, not one per request (``taken`` says when, for ``reading.readdir``).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from unionfs.union.stack import Resolved


@dataclass(slots=True)
class FileHandle:
    fd: int
    ino: int
    writable: bool
    upper: bool = False  # fd is a file of the upper layer (else of a lower: never written)
    noatime: bool = False  # opened with O_NOATIME: reads leave the atime alone
    flags: int = 0  # the backing descriptor's open flags (what sharing it requires)
    lazy: tuple[str, bytes] | None = None  # a lower file of a lazy layer (fuse.lazyhook)


ShareKey = tuple[int, bool, int]  # (inode, upper, backing flags)


@dataclass(slots=True)
class DirHandle:
    ino: int
    entries: list[tuple[bytes, Resolved, object]] | None = None
    taken: int = 0  # the mount's count of changes when ``entries`` was taken


def backing_flags(flags: int) -> int:
    """Flags for the upper file behind a FUSE open. Write-only becomes read-write, since
    the write-back cache reads pages of files open for writing; O_APPEND goes, since the
    kernel sends every write with its offset and pwrite on O_APPEND ignores offsets."""
    mode = flags & os.O_ACCMODE
    keep = flags & (os.O_SYNC | os.O_DSYNC | os.O_NOATIME)
    return (os.O_RDONLY if mode == os.O_RDONLY else os.O_RDWR) | keep


class HandleTable:
    """Invariant: a handle number names one open file or directory until it is released.

    Shared descriptors: ``_users[fd]`` counts the handles using *fd*; ``_shared`` maps
    each key to a descriptor of that key in use; a descriptor is closed with its last user.
    By inode: ``_of_ino[ino]`` holds exactly the open file handles of *ino* (number ->
    handle, in open order) and ``_writers[ino]`` counts those open for writing, so
    ``fd_of`` and ``has_writer`` never look at the handles of other files.
    """

    def __init__(self) -> None:
        self._next = 1
        self._files: dict[int, FileHandle] = {}
        self._dirs: dict[int, DirHandle] = {}
        self._users: dict[int, int] = {}
        self._shared: dict[ShareKey, int] = {}
        self._of_ino: dict[int, dict[int, FileHandle]] = {}
        self._writers: dict[int, int] = {}

    def _number(self) -> int:
        fh = self._next
        self._next += 1
        return fh

    def open_file(self, handle: FileHandle) -> int:
        """Number *handle*, whose descriptor is fresh: if one of the same file opened alike
        is in use, the handle takes that one and the fresh one is closed."""
        key = (handle.ino, handle.upper, handle.flags)
        shared = self._shared.get(key)
        if shared is not None and shared != handle.fd:
            os.close(handle.fd)
            handle.fd = shared
        else:
            self._shared[key] = handle.fd
        self._users[handle.fd] = self._users.get(handle.fd, 0) + 1
        fh = self._number()
        self._files[fh] = handle
        self._of_ino.setdefault(handle.ino, {})[fh] = handle
        if handle.writable:
            self._writers[handle.ino] = self._writers.get(handle.ino, 0) + 1
        return fh

    def replace_fd(self, handle: FileHandle, fd: int, upper: bool) -> None:
        """*handle* now uses the fresh descriptor *fd* (a copy of its file appeared)."""
        self._drop(handle)
        handle.fd, handle.upper = fd, upper
        key = (handle.ino, handle.upper, handle.flags)
        shared = self._shared.get(key)
        if shared is not None and shared != fd:
            os.close(fd)
            handle.fd = shared
        else:
            self._shared[key] = fd
        self._users[handle.fd] = self._users.get(handle.fd, 0) + 1

    def _drop(self, handle: FileHandle) -> None:
        """*handle* stops using its descriptor, closed if it was the last user."""
        left = self._users.get(handle.fd, 1) - 1
        if left > 0:
            self._users[handle.fd] = left
            return
        self._users.pop(handle.fd, None)
        key = (handle.ino, handle.upper, handle.flags)
        if self._shared.get(key) == handle.fd:
            del self._shared[key]
        os.close(handle.fd)

    def descriptors(self) -> int:
        """How many descriptors the open files use."""
        return len(self._users)

    def open_dir(self, handle: DirHandle) -> int:
        fh = self._number()
        self._dirs[fh] = handle
        return fh

    def file(self, fh: int) -> FileHandle:
        try:
            return self._files[fh]
        except KeyError:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None

    def dir(self, fh: int) -> DirHandle:
        try:
            return self._dirs[fh]
        except KeyError:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None

    def release_file(self, fh: int) -> FileHandle | None:
        handle = self._files.pop(fh, None)
        if handle is not None:
            self._drop(handle)
            mine = self._of_ino[handle.ino]
            del mine[fh]
            if not mine:
                del self._of_ino[handle.ino]
            if handle.writable:
                left = self._writers[handle.ino] - 1
                if left:
                    self._writers[handle.ino] = left
                else:
                    del self._writers[handle.ino]
        return handle

    def release_dir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    def fd_of(self, ino: int, upper: bool = False) -> int | None:
        """A descriptor of an open handle of inode *ino* (for fstat once it is unlinked):
        one of its upper file if there is one (a handle still on the lower file, opened
        before the copy-up, would say the lower's link count); with *upper*, only that."""
        lower = None
        for handle in self._of_ino.get(ino, {}).values():
            if handle.upper:
                return handle.fd
            lower = handle.fd if lower is None else lower
        return None if upper else lower

    def has_writer(self, ino: int) -> bool:
        """Whether a handle of inode *ino* is open for writing."""
        return ino in self._writers

    def close_all(self) -> None:
        for fd in self._users:
            os.close(fd)
        self._users.clear()
        self._shared.clear()
        self._files.clear()
        self._of_ino.clear()
        self._writers.clear()
        self._dirs.clear()
