"""The FUSE face of a stack: turns pyfuse3 requests into ``union`` calls.

Concurrency: pyfuse3 runs every handler as a task on one trio thread; between two awaits a
handler runs alone, so the inode and handle tables need no locks as long as no handler
awaits in the middle of changing them.

Errors: every handler goes through ``@handler``. An ``OSError`` becomes its errno; any other
exception is a bug, logged with its traceback and answered EIO, because pyfuse3 lets any
exception other than FUSEError end the whole mount. ``forget`` never raises.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

import pyfuse3
import trio

from unionfs import idmap, layerfmt
from unionfs.fuse import entry
from unionfs.fuse.changes import ChangeOperations
from unionfs.fuse.edge import handler
from unionfs.fuse.handles import DirHandle, FileHandle, HandleTable
from unionfs.fuse.inodes import InodeTable, Listed, Node
from unionfs.union.atime import RELATIME, AtimePolicy, Toucher
from unionfs.union.copyup import shown_ino
from unionfs.union.lookup import lookup
from unionfs.union.readdir import list_dir
from unionfs.union.stack import Resolved, Stack

log = logging.getLogger("unionfs.fuse")


class UnionOperations(ChangeOperations, pyfuse3.Operations):
    """Serves one ``Stack``. Invariant: ``inodes`` holds every inode the kernel references."""

    # Writes gather in the kernel's page cache and arrive in ~1 MiB requests (FACTS.md).
    enable_writeback_cache = True
    # POSIX ACLs: the kernel checks permissions with them (it asks getxattr for
    # system.posix_acl_access once an inode) and leaves their storage to us, as kernel
    # overlayfs honours the ACLs of its layers. Without this a user granted access by an
    # ACL gets EACCES.
    enable_acl = True
    # No file handles (name_to_handle_at: EOPNOTSUPP), as kernel overlayfs without
    # nfs_export: the kernel could decode ours only while it caches the inode, and an
    # inode's number is not enough to find it again after that (or after a remount).
    no_export_support = True

    def __init__(self, stack: Stack, owners: idmap.Owners = idmap.IDENTITY,
                 atime: AtimePolicy = RELATIME) -> None:  # fmt: skip
        super().__init__()
        self.stack = stack
        # Upper atimes follow the mount's flags; ``atime.policy`` changes on a remount.
        self.atime = None if stack.upper is None else Toucher(stack.upper, atime)
        self.owners = owners
        self.mapped = not owners.identity
        # With index=on the names of a lower hard link stay one inode (the kernel's too).
        self.inodes = InodeTable(stack.root(), stack.has_upper and not stack.features.index,
                                 lambda res: shown_ino(stack, res))  # fmt: skip
        self.handles = HandleTable()
        self.lock = trio.Lock()
        self.stale: set[int] = set()

    # -- helpers -------------------------------------------------------------------------
    def _attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        return self._entry(node.ino, node.res)

    def _current(self, node: Node) -> pyfuse3.EntryAttributes:
        """Attributes now: an upper entry may have changed by writes since it was resolved."""
        res = node.res
        upper = self.stack.upper
        if res.top == 0 and upper is not None and not node.unlinked:
            st = upper.lstat(res.path)
            if st is not None and (st.st_dev, st.st_ino) == (res.st.st_dev, res.st.st_ino):
                node.res = res.with_st(st)
                return self._attrs(node)
            node.unlinked = True
        if node.unlinked:
            # Once copied up, only a descriptor of the upper file tells its state: one still
            # on the lower file (opened before the copy-up) would say the lower's count.
            fd = self.handles.fd_of(node.ino, upper=res.top == 0)
            if fd is not None:
                # An upper file says nlink 0; a whited-out lower one keeps its own count,
                # as the kernel shows it.
                node.res = res.with_st(os.fstat(fd))
                return self._attrs(node)
            return self._entry(node.ino, node.res, unlinked=True)
        return self._attrs(node)

    # -- lookups and attributes ----------------------------------------------------------
    @handler
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        if name == b".":
            node = self.inodes.remember(parent.res, parent.parent)
            return self._attrs(node)
        if name == b"..":
            up = self.inodes.get(parent.parent)
            node = self.inodes.remember(up.res, up.parent)
            return self._attrs(node)
        res = lookup(self.stack, parent.res, name)
        if res is None:
            return entry.negative()
        if res.top == 0 and parent.res.top != 0:
            self._refresh_ancestors(res.path)  # linked up to an indexed copy (index=on)
        return self._attrs(self.inodes.remember(res, parent_inode))

    @handler
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._current(self.inodes.get(inode))

    @handler
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        res = self.inodes.get(inode).res
        return self.stack.layers[res.top].readlink(res.top_path)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        try:
            for ino, count in inode_list:
                self.inodes.forget(ino, count)
        except Exception:
            log.exception("ERROR: forget failed")

    @handler
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        # Like the kernel: the numbers of the top layer (the upper when there is one).
        st = self.stack.layers[0].statvfs()
        data = pyfuse3.StatvfsData()
        data.f_bsize = st.f_bsize
        data.f_frsize = st.f_frsize
        data.f_blocks = st.f_blocks
        data.f_bfree = st.f_bfree
        data.f_bavail = st.f_bavail
        data.f_files = st.f_files
        data.f_ffree = st.f_ffree
        data.f_favail = st.f_favail
        data.f_namemax = min(st.f_namemax, layerfmt.NAME_MAX)
        return data

    # -- xattrs --------------------------------------------------------------------------
    @handler
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        res = self.inodes.get(inode).res
        stored = layerfmt.escape_xattr(name, self.stack.private)
        value = self.stack.layers[res.top].getxattr(res.top_path, stored)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    @handler
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        res = self.inodes.get(inode).res
        names = self.stack.layers[res.top].listxattr(res.top_path)
        private = self.stack.private
        return [shown for n in names if (shown := layerfmt.shown_xattr(n, private)) is not None]

    # -- files ---------------------------------------------------------------------------
    @handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self.inodes.get(inode)
        wants_write = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if wants_write:
            fd = await self._open_for_write(node, flags, ctx)
        else:
            res = node.res  # a metacopy file's data is still below
            fd = self.stack.layers[res.data].open(res.data_path, os.O_RDONLY)
        upper = bool(wants_write) or (
            node.res.top == 0 and not node.res.metacopy and self.stack.has_upper
        )
        noatime = bool(flags & os.O_NOATIME)
        fh = self.handles.open_file(FileHandle(fd, inode, bool(wants_write), upper, noatime))
        # Every change goes through this mount, so the kernel's pages stay valid.
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    @handler
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self.handles.file(fh)
        if not handle.upper and self.stack.has_upper:
            self._follow_copy_up(handle)
        data = os.pread(handle.fd, size, off)
        if handle.upper and not handle.noatime and self.atime is not None:
            node = self.inodes.find(handle.ino)
            if node is not None and not node.unlinked and node.res.top == 0:
                self.atime.accessed(node.res.top_path, handle.fd)
        return data

    def _follow_copy_up(self, handle: FileHandle) -> None:
        """A handle opened on a lower file reads the copy once there is one (the kernel's
        stacked file does the same), or it would read stale data after a copy-up."""
        node = self.inodes.find(handle.ino)
        if node is None or node.res.top != 0 or node.res.metacopy or node.unlinked:
            return
        upper = self.stack.upper
        assert upper is not None
        fd = upper.open(node.res.path, os.O_RDONLY)
        os.close(handle.fd)
        handle.fd, handle.upper = fd, True

    @handler
    async def release(self, fh: int) -> None:
        self.handles.release_file(fh)

    @handler
    async def flush(self, fh: int) -> None:
        self.handles.file(fh)

    # -- directories ---------------------------------------------------------------------
    @handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        self._dir(inode)
        return self.handles.open_dir(DirHandle(inode))

    def _listing(self, node: Node) -> list[Listed]:
        """The merged listing of *node* with each entry's attributes, cached on the node
        when the directory has no upper part (so ``ls`` and ``find`` cost one merge)."""
        if node.listing is not None:
            return node.listing
        found = list_dir(self.stack, node.res)
        if self.stack.has_upper and 0 not in node.res.layers:
            linked = [res.path for _, res in found if res.top == 0]
            if linked:  # names linked up to indexed copies (index=on): the dir is upper now
                self._refresh_ancestors(linked[0])
        listing: list[Listed] = [
            (name, res, self._entry(self.inodes.number(res), res)) for name, res in found
        ]
        if 0 not in node.res.layers or not self.stack.has_upper:
            node.listing = listing
        return listing

    @handler
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self.handles.dir(fh)
        node = self.inodes.get(handle.ino)
        if handle.entries is None or start_id == 0:
            handle.entries = self._listing(node)
        if self.atime is not None and 0 in node.res.layers:
            self.atime.accessed(node.res.path_in(0))  # each getdents, as iterate_dir
        parent = self.inodes.find(node.parent) or node
        # Offsets: 1 and 2 follow "." and ".."; entry i of the snapshot ends at i + 3.
        if start_id == 0:
            if not pyfuse3.readdir_reply(token, b".", self._attrs(node), 1):
                return
            start_id = 1
        if start_id == 1:
            if not pyfuse3.readdir_reply(token, b"..", self._attrs(parent), 2):
                return
            start_id = 2
        entries = handle.entries
        remember = self.inodes.remember_listed
        for index in range(start_id - 2, len(entries)):
            name, res, attrs = entries[index]
            assert isinstance(attrs, pyfuse3.EntryAttributes)
            if not pyfuse3.readdir_reply(token, name, attrs, index + 3):
                return
            # The kernel took a reference for every entry it accepted (READDIRPLUS).
            remember(attrs.st_ino, res, handle.ino)

    @handler
    async def releasedir(self, fh: int) -> None:
        self.handles.release_dir(fh)

    @handler
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        self.handles.dir(fh)

    # -- permissions (the kernel checks them: default_permissions) ---------------------
    @handler
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        self.inodes.get(inode)
        if mode & os.W_OK and not self.stack.has_upper:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return True


def resolved_of(ops: UnionOperations, inode: int) -> Resolved:
    """For tests and tools: how inode *inode* resolves now."""
    return ops.inodes.get(inode).res
