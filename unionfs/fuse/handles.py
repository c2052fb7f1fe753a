"""Open files and open directories.

A file handle owns one descriptor of the backing file in the layer that held it when it was
opened. A directory handle owns a snapshot of the merged listing, taken at the first
readdir from offset 0: offsets are positions in that snapshot, so a directory read in
several requests costs one merge, not one per request.
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


@dataclass(slots=True)
class DirHandle:
    ino: int
    entries: list[tuple[bytes, Resolved, object]] | None = None


def backing_flags(flags: int) -> int:
    """Flags for the upper file behind a FUSE open. Write-only becomes read-write, since
    the write-back cache reads pages of files open for writing; O_APPEND goes, since the
    kernel sends every write with its offset and pwrite on O_APPEND ignores offsets."""
    mode = flags & os.O_ACCMODE
    keep = flags & (os.O_SYNC | os.O_DSYNC | os.O_NOATIME)
    return (os.O_RDONLY if mode == os.O_RDONLY else os.O_RDWR) | keep


class HandleTable:
    """Invariant: a handle number names one open file or directory until it is released."""

    def __init__(self) -> None:
        self._next = 1
        self._files: dict[int, FileHandle] = {}
        self._dirs: dict[int, DirHandle] = {}

    def _number(self) -> int:
        fh = self._next
        self._next += 1
        return fh

    def open_file(self, handle: FileHandle) -> int:
        fh = self._number()
        self._files[fh] = handle
        return fh

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
            os.close(handle.fd)
        return handle

    def release_dir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    def fd_of(self, ino: int, upper: bool = False) -> int | None:
        """A descriptor of an open handle of inode *ino* (for fstat once it is unlinked):
        one of its upper file if there is one (a handle still on the lower file, opened
        before the copy-up, would say the lower's link count); with *upper*, only that."""
        lower = None
        for handle in self._files.values():
            if handle.ino == ino:
                if handle.upper:
                    return handle.fd
                lower = handle.fd if lower is None else lower
        return None if upper else lower

    def close_all(self) -> None:
        for handle in self._files.values():
            os.close(handle.fd)
        self._files.clear()
        self._dirs.clear()
