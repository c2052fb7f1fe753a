"""The FUSE handlers of open files: open, read, write, fsync, flush, release.

An open for reading takes a descriptor of the file where its data is (a lower layer, the
upper, or the link index); an open for writing copies the file up first, under the
mutation lock (``MountState.changing``), and takes a descriptor of the upper copy. A read
through a lower descriptor follows the copy once there is one. A writer goes through the
kernel's write-back cache only while the upper has room for it (``space``) and was not
opened with O_DIRECT, else direct; a direct write drops the kernel's cached pages of its
inode before it is answered (``_drop_stale_pages``).
"""

from __future__ import annotations

import errno
import logging
import os
import stat

import pyfuse3
import trio

from unionfs.fuse import killpriv
from unionfs.fuse.edge import handler
from unionfs.fuse.handles import FileHandle, backing_flags
from unionfs.fuse.inodes import Node
from unionfs.fuse.state import MountState
from unionfs.union import attrs

# How long a writer that met a full upper waits for forgets of unlinked files (_write_direct).
HELD_GRACE = 0.05

log = logging.getLogger("unionfs.fuse")


class FileHandlers(MountState):
    """open, read, write, fsync, flush, release."""

    @handler
    async def open(
        self, inode: int, flags: int, ctx: pyfuse3.RequestContext, kill_suidgid: bool = False
    ) -> pyfuse3.FileInfo:
        # kill_suidgid (kill-priv v2): an O_TRUNC without CAP_FSETID, known from ctx too.
        node = self.inodes.get(inode)
        wants_write = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if node.unlinked:
            fd = self._open_unlinked(node, flags, bool(wants_write))
        elif wants_write:
            fd = await self._open_for_write(node, flags, ctx)
        else:
            layer, path = self.stack.data_of(node.res)  # a metacopy file's is still below
            fd = layer.open(path, os.O_RDONLY)
        upper = bool(wants_write) or (
            node.res.top == 0 and not node.res.metacopy and self.stack.has_upper
        )
        noatime = bool(flags & os.O_NOATIME)
        handle = FileHandle(fd, inode, bool(wants_write), upper, noatime, backing_flags(flags))
        if not upper:
            handle.lazy = self._lazy_where(node.res)
        fh = self.handles.open_file(handle)
        return self._file_info(fh, inode, bool(wants_write), flags)

    def _open_unlinked(self, node: Node, flags: int, wants_write: bool) -> int:
        """Open a file with no name left (through ``/proc/self/fd`` of a process holding
        it): the file itself, never whatever its old path names now."""
        res = node.res
        if not wants_write and (res.metacopy or res.top != 0):
            layer, path = self.stack.data_of(res)  # a lower layer's: it never changes
            return layer.open(path, os.O_RDONLY)
        if res.top != 0 or res.metacopy:
            # Its data is below, and the kernel cannot copy up what has no name: EEXIST.
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
        if node.held is None:  # not reachable any more (never so when it went through us)
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        fd = node.held.reopen(backing_flags(flags) if wants_write else os.O_RDONLY)
        if wants_write and flags & os.O_TRUNC:
            os.ftruncate(fd, 0)
        return fd

    async def _open_for_write(self, node: Node, flags: int, ctx: pyfuse3.RequestContext) -> int:
        self._upper_check()
        truncate = bool(flags & os.O_TRUNC) and stat.S_ISREG(node.res.st.st_mode)
        async with self.changing():
            res = await self._copied_up(node, data=not truncate)
            assert self.stack.upper is not None
            backing = backing_flags(flags)
            if truncate and backing & os.O_ACCMODE == os.O_RDONLY:
                backing = backing & ~os.O_ACCMODE | os.O_RDWR  # O_RDONLY|O_TRUNC truncates too
            fd = self.stack.upper.open(res.path, backing)
            if truncate:
                os.ftruncate(fd, 0)
                killed = self._truncate_rule(node, ctx)
                if killed.mode is not None:
                    res = attrs.set_attributes(self.stack, res, killed, fd)
                    self.stale.add(node.ino)  # the open's reply carries no attributes
            self._changed(node, self._fresh(res))
        await self._tell_kernel()
        return fd

    @handler
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self.handles.file(fh)
        if not handle.upper and self.stack.has_upper:
            self._follow_copy_up(handle)
        lazy = handle.lazy
        if lazy is not None and not handle.upper and self.lazy is not None:
            if self.lazy.pending(*lazy):  # its data is not here yet: fetched, verified
                return await trio.to_thread.run_sync(self.lazy.read, *lazy, off, size)
            handle.lazy = None
        data = os.pread(handle.fd, size, off)
        self.paged.add(handle.ino)  # (or an O_DIRECT read: the two look alike)
        if handle.upper and not handle.noatime and self.atime is not None:
            self._accessed(handle)
        return data

    def _accessed(self, handle: FileHandle) -> None:
        """The upper file behind *handle* was read: its atime as the mount's flags say (a
        dictionary look-up, no system call, while noatime or relatime has nothing to do)."""
        assert self.atime is not None
        node = self.inodes.find(handle.ino)
        if node is not None and not node.unlinked and node.res.top == 0:
            self.atime.accessed(node.res.top_path, handle.fd)

    @handler
    async def write(self, fh: int, off: int, buf: bytes, kill_suidgid: bool = False) -> int:
        handle = self.handles.file(fh)
        if not handle.writable:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if kill_suidgid:
            await self._kill_suidgid(handle)
        room = self.room
        if fh not in room.cached:  # direct I/O: the writer waits for this answer
            written = await self._write_direct(handle.fd, buf, off)
            room.wrote(written)
            await self._drop_stale_pages(handle.ino)
        else:
            try:
                written = os.pwrite(handle.fd, buf, off)
            except OSError as exc:
                # Write-back: the writer learns it at fsync or close; the data is lost.
                log.warning("write-back of %d bytes to inode %d failed: %s",
                            len(buf), handle.ino, exc)  # fmt: skip
                raise
            room.wrote(written)
            self.paged.add(handle.ino)
            self.stale |= room.newly_watched()
            await self._tell_kernel()
        if self.atime is not None:
            self.atime.changed()  # the mtime moved: relatime updates at the next read
        return written

    async def _kill_suidgid(self, handle: FileHandle) -> None:
        """A write by a caller without CAP_FSETID (kill-priv v2) clears set-id bits, as the
        VFS's write does, before the data goes in."""
        mode = os.fstat(handle.fd).st_mode
        if (after := killpriv.cleared(mode)) != mode:
            os.fchmod(handle.fd, stat.S_IMODE(after))
            self.stale.add(handle.ino)
            await self._tell_kernel()

    async def _drop_stale_pages(self, ino: int) -> None:
        """After a direct write to inode *ino*, before its answer: drop the kernel's pages
        of the inode. The kernel drops the written range before it sends a direct write,
        and, for an asynchronous one (io_submit), never after: a buffered read in between
        (a reader, or readahead) was answered with the old data, and its pages stayed in
        the cache for good (the kernel's own filesystems drop them again when the write
        completes). The drop runs in a thread, awaited: it waits on pages locked by reads
        that this loop answers meanwhile. Only while no handle of the inode writes through
        the page cache: a write from there (write-back of its pages) may be in flight
        with pages the drop would wait on, and they would wait for this very answer.
        Nothing to drop if the kernel read nothing since the last drop (a writer that only
        writes, as ``dd oflag=direct``, pays no thread hop): a read answered while the drop
        runs marks the inode again."""
        if ino not in self.paged or ino in self.room.cached.values():
            return
        self.paged.discard(ino)
        try:
            await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino)
        except Exception as exc:  # no session (Operations under test), or not cached
            log.debug("dropping the pages of inode %d: %s", ino, exc)

    async def _write_direct(self, fd: int, buf: bytes, off: int) -> int:
        """Write *buf* (or what ``room`` admits of it) at *off*. A full upper may only be
        full of files unlinked a moment ago: the kernel's overlay frees their blocks at the
        unlink, we when the kernel's forget reaches us (it is queued by then). So on ENOSPC
        with such files held, the forgets already sent are let in, and the write tried again."""
        try:
            return self._pwrite_admitted(fd, buf, off)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not await self._held_files_let_go():
                raise
        return self._pwrite_admitted(fd, buf, off)

    def _pwrite_admitted(self, fd: int, buf: bytes, off: int) -> int:
        size = self.room.admit_direct(len(buf))
        return os.pwrite(fd, buf if size == len(buf) else memoryview(buf)[:size], off)

    async def _held_files_let_go(self) -> bool:
        """Wait briefly for queued forgets to release held unlinked files; True if any did."""
        if not self.inodes.holding:
            return False
        before = self.inodes.released
        with trio.move_on_after(HELD_GRACE):
            while self.inodes.released == before:
                await trio.sleep(0.001)
        return self.inodes.released != before

    @handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self.handles.file(fh)
        await trio.to_thread.run_sync(os.fdatasync if datasync else os.fsync, handle.fd)
        if handle.writable:
            # The kernel keeps no block count of its own under the write-back cache, and
            # drops the one it has only at a close: an fstat after fsync would show the
            # count from before the writes (kernel overlayfs shows the upper's).
            self.stale.add(handle.ino)
            await self._tell_kernel()

    @handler
    async def flush(self, fh: int) -> None:
        # Nothing to do at a close: no data waits here (the kernel writes its cached pages
        # back, and reports their errors, before it would send FLUSH), and no lock is ours.
        # ENOSYS once, and the kernel sends no FLUSH again on this mount (fc->no_flush):
        # one round trip less per close(2). FOPEN_NOFLUSH cannot do it under the
        # write-back cache (bench/results/README.md).
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    @handler
    async def release(self, fh: int) -> None:
        self.room.released(fh)
        self.handles.release_file(fh)
        if self.backings is not None:
            self.backings.released(fh)
