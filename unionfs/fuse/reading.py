"""The FUSE handlers that only read: lookups, attributes, link targets, xattrs, listings,
statfs and access checks.

They change no layer and take no lock: between two awaits a handler runs alone, and none
of these awaits. A lookup is ``union``'s pure query, so a lookup or a listing never
changes what another request sees.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

import pyfuse3

from unionfs import layerfmt
from unionfs.fuse import entry, kernelcache
from unionfs.fuse.edge import handler
from unionfs.fuse.handles import DirHandle
from unionfs.fuse.inodes import Listed, Node
from unionfs.fuse.state import MountState
from unionfs.union import hardlinks
from unionfs.union.lookup import lookup
from unionfs.union.readdir import list_dir
from unionfs.union.stack import Resolved

log = logging.getLogger("unionfs.fuse")


class ReadHandlers(MountState):
    """lookup, getattr, readlink, forget, statfs, getxattr, listxattr, opendir, readdir,
    releasedir, fsyncdir, access."""

    def _current(self, node: Node) -> pyfuse3.EntryAttributes:
        """Attributes now: an upper entry may have changed by writes since it was resolved
        (and so may an indexed copy that a lower name shows)."""
        res = node.res
        upper = self.stack.upper
        if res.index_copy is not None and not node.unlinked:
            layer, path = self.stack.meta_of(res)
            st = layer.lstat(path)
            if st is not None:
                node.res = res.with_st(st)
            return self._attrs(node)
        if res.top == 0 and upper is not None and not node.unlinked:
            st = upper.lstat(res.path)
            if st is not None and (st.st_dev, st.st_ino) == (res.st.st_dev, res.st.st_ino):
                node.res = res.with_st(st)
                return self._attrs(node)
            node.unlinked = True
        if node.held is not None:
            return self._held_attrs(node)
        if node.unlinked:
            # Through an open descriptor: an upper file says nlink 0; a whited-out lower one
            # keeps its own count, as the kernel shows it, but only if it was never copied
            # up (then the overlay inode is the upper file, whichever descriptor asks).
            fd = self.handles.fd_of(node.ino, upper=True)
            if fd is None and res.top != 0:
                fd = self.handles.fd_of(node.ino)
            if fd is not None:
                node.res = res.with_st(os.fstat(fd))
                return self._attrs(node)
            return self._attrs(node, unlinked=True)
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
        return self._attrs(self.inodes.remember(res, parent_inode))

    @handler
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        # Through an open file, before a write into the kernel's cache (``space``).
        if self.room.refuses(getattr(ctx, "fh", None)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._current(self.inodes.get(inode))

    @handler
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        node = self.inodes.get(inode)
        if node.held is not None:
            return node.held.readlink()
        layer, path = self.stack.meta_of(node.res)
        return layer.readlink(path)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        try:
            for ino, count in inode_list:
                self.inodes.forget(ino, count)
                if ino in self.paged and self.inodes.find(ino) is None:
                    self.paged.discard(ino)  # the kernel's inode went, and its pages
                if self.backings is not None and self.inodes.find(ino) is None:
                    self.backings.forget(ino)
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
        node = self.inodes.get(inode)
        name = layerfmt.escape_xattr(name, self.stack.private)
        if node.held is not None:
            value = node.held.getxattr(name)
        else:
            layer, path = self.stack.meta_of(node.res)
            value = layer.getxattr(path, name)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    @handler
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        node = self.inodes.get(inode)
        if node.held is not None:
            names = node.held.listxattr()
        else:
            layer, path = self.stack.meta_of(node.res)
            names = layer.listxattr(path)
        private = self.stack.private
        return [shown for n in names if (shown := layerfmt.shown_xattr(n, private)) is not None]

    # -- directories ---------------------------------------------------------------------
    @handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int | pyfuse3.FileInfo:
        self._dir(inode)
        return kernelcache.opened_dir(self.handles.open_dir(DirHandle(inode)))

    def _listing(self, node: Node) -> list[Listed]:
        """The merged listing of *node* with each entry's attributes, cached on the node
        when the directory has no upper part (so ``ls`` and ``find`` cost one merge).
        Nothing changes such a listing without copying the directory up (which drops it),
        except, with ``index=on``, a name of a lower hard link: it shows the copy that
        another name's copy-up makes, anywhere; a listing holding one is not kept."""
        if node.listing is not None:
            return node.listing
        listing: list[Listed] = [
            (name, res, self._shown(self.inodes.number(res), res))
            for name, res in list_dir(self.stack, node.res)
        ]
        keep = 0 not in node.res.layers or not self.stack.has_upper
        if keep and self.stack.features.index and self.stack.has_upper:
            keep = not any(hardlinks.lower_link(self.stack, res) for _, res, _ in listing)
        if keep:
            node.listing = listing
        return listing

    def _now(self, node: Node, name: bytes) -> tuple[Resolved, pyfuse3.EntryAttributes] | None:
        """Entry *name* of directory *node* with its attributes as it is now (None: gone,
        or the directory is: its path may name another by now)."""
        if node.unlinked:
            return None
        res = lookup(self.stack, node.res, name)
        if res is None:
            return None
        return res, self._shown(self.inodes.number(res), res)

    @handler
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self.handles.dir(fh)
        node = self.inodes.get(handle.ino)
        if handle.entries is None or start_id == 0:
            handle.entries = self._listing(node)
            handle.taken = self.changes
        # A listing goes on in the names of its snapshot; if anything changed since it was
        # taken, each entry is described as it is now. The kernel applies the attributes of
        # a READDIRPLUS entry to its cached inode unless that changed after the request
        # began (fuse_direntplus_link, attr_version): a link count from the snapshot, taken
        # before a link, would become the kernel's, and the next unlink would take it to 0
        # (link(2) then fails with ENOENT). A name gone since is left out: served from the
        # snapshot, the kernel would cache a dentry for it, and its identity (st_dev, st_ino)
        # may by now be another file's (ext4 reuses numbers), whose node would take its name.
        changed = handle.taken != self.changes
        if self.atime is not None and 0 in node.res.layers:
            self.atime.accessed(node.res.path_in(0), is_dir=True)  # each getdents (iterate_dir)
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
        inodes = self.inodes
        separate = inodes.separate_ids  # else a node id 0 would be st_ino 0 (no binding)
        for index in range(start_id - 2, len(entries)):
            name, res, attrs = entries[index]
            if changed:
                now = self._now(node, name)
                if now is None:
                    continue
                res, attrs = now
            assert isinstance(attrs, pyfuse3.EntryAttributes)
            if separate and inodes.node_of(res) is not None:
                # An inode the kernel holds: its name alone (node id 0: no attributes, no
                # reference). The kernel drops the link count of an unlinked name's inode
                # itself, after our answer (fuse_entry_unlinked); attributes read after that
                # answer and applied before that drop count the unlink twice (nlink 0:
                # link(2) then fails with ENOENT). Its attributes stay right without them:
                # the answers to its own requests and our invalidations keep them.
                attrs.node_id = 0
                if not pyfuse3.readdir_reply(token, name, attrs, index + 3):
                    return
                continue
            ino = inodes.id_of(res)
            if not pyfuse3.readdir_reply(token, name, self._identified(attrs, ino), index + 3):
                return
            # The kernel took a reference for every entry it accepted (READDIRPLUS).
            inodes.remember_listed(ino, res, handle.ino)

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
