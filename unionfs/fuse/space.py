"""The FUSE handlers of a file's space: fallocate, lseek (SEEK_DATA/SEEK_HOLE) and
copy_file_range, each on the descriptor an open file already holds.

A handle open for writing is the upper copy (``files`` copied the file up, data and all,
a metacopy file too), so these act on it as kernel overlayfs does on its real file: the
upper's own answer, errno included. A read-only handle follows a copy-up first, as read
does. They are only reached with the patched pyfuse3 (``features``); stock pyfuse3 never
calls them.
"""

from __future__ import annotations

import ctypes
import errno
import os

import pyfuse3
import trio

from unionfs.fuse.edge import handler
from unionfs.fuse.handles import FileHandle
from unionfs.fuse.state import MountState

# Ranges from here on are allocated in a worker thread (tmpfs zeroes pages as it goes).
THREAD_ALLOCATE_MIN = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


def fallocate_fd(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2): *mode* passed through (the kernel's FUSE client sends only
    KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE; the upper refuses what it cannot do)."""
    if _libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class SpaceHandlers(MountState):
    """fallocate, lseek, copy_file_range."""

    def _writable(self, fh: int) -> FileHandle:
        handle = self.handles.file(fh)
        if not handle.writable:  # the kernel checks FMODE_WRITE first: never reached
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return handle

    def _readable(self, fh: int) -> FileHandle:
        handle = self.handles.file(fh)
        if not handle.upper and self.stack.has_upper:
            self._follow_copy_up(handle)
        return handle

    @handler
    async def fallocate(self, fh: int, mode: int, offset: int, length: int) -> None:
        fd = self._writable(fh).fd
        if length >= THREAD_ALLOCATE_MIN:
            await trio.to_thread.run_sync(fallocate_fd, fd, mode, offset, length)
        else:
            fallocate_fd(fd, mode, offset, length)

    @handler
    async def lseek(self, fh: int, offset: int, whence: int) -> int:
        if whence not in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        handle = self._readable(fh)
        if not handle.upper:
            await self._lazy_whole(handle.lazy)  # a placeholder's holes are not the file's
        if self.handles.has_writer(handle.ino):
            await self._write_back(handle.ino)
        return os.lseek(handle.fd, offset, whence)

    async def _write_back(self, ino: int) -> None:
        """Make the kernel write the dirty pages of *ino* to us. Under the write-back cache
        they exist only in the kernel while the file is open for writing, and its FUSE
        client sends LSEEK without writing them first: the file would show holes (or an
        end) where the caller wrote data, and ``cp --sparse`` would drop that data.
        Invalidating the pages launders the dirty ones (WRITE requests, answered by other
        tasks while this one waits in a thread)."""
        try:
            await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino, False)
        except OSError as exc:  # the kernel forgot the inode: no pages left
            if exc.errno != errno.ENOENT:
                raise

    @handler
    async def copy_file_range(
        self, fh_in: int, off_in: int, fh_out: int, off_out: int, length: int, flags: int
    ) -> int:
        if flags:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        source = self._readable(fh_in)
        if not source.upper:
            await self._lazy_whole(source.lazy)
        src = source.fd
        dst = self._writable(fh_out).fd
        # EXDEV (a lower on another file system) makes the kernel copy by read and write.
        if length >= THREAD_ALLOCATE_MIN:
            return await trio.to_thread.run_sync(
                os.copy_file_range, src, dst, length, off_in, off_out
            )
        return os.copy_file_range(src, dst, length, off_in, off_out)
