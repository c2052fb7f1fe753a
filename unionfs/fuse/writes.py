"""The FUSE handlers that create, remove and rename entries, and the bookkeeping every
change shares (``changes`` builds on it for the handlers that change a file in place).

Every change runs under one mutation lock, so the rules never see a half-done change of
another request; a copy-up of file data runs in a worker thread under that lock, so reads
and lookups keep being served while it runs. After a change, the nodes it touched are
re-resolved: the entry, its parent and every ancestor a copy-up may have created.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator

import pyfuse3
import trio

from unionfs import idmap
from unionfs.fuse import entry
from unionfs.fuse.edge import handler
from unionfs.fuse.handles import FileHandle, HandleTable
from unionfs.fuse.inodes import InodeTable, Node
from unionfs.safepath import join, split
from unionfs.union import create, hardlinks, link, redirect, remove
from unionfs.union import rename as rename_rules
from unionfs.union.copyup import copy_up, copy_up_data
from unionfs.union.lookup import lookup, resolve_path
from unionfs.union.stack import Resolved, Stack

log = logging.getLogger("unionfs.fuse")

# Data copy-ups above this size leave the trio thread (a thread hop costs ~100 us).
THREAD_COPY_MIN = 1 << 20


def _erofs() -> OSError:
    return OSError(errno.EROFS, os.strerror(errno.EROFS))


def _breaks_link(res: Resolved) -> bool:
    """Copying up *res* breaks a hard link (its count changes behind the kernel's cache)."""
    return res.top != 0 and not res.is_dir and res.st.st_nlink > 1


def backing_flags(flags: int) -> int:
    """Flags for the upper file behind a FUSE open. Write-only becomes read-write, since
    the write-back cache reads pages of files open for writing; O_APPEND goes, since the
    kernel sends every write with its offset and pwrite on O_APPEND ignores offsets."""
    mode = flags & os.O_ACCMODE
    keep = flags & (os.O_SYNC | os.O_DSYNC | os.O_NOATIME)
    return (os.O_RDONLY if mode == os.O_RDONLY else os.O_RDWR) | keep


class WriteOperations:
    """Mixed into ``UnionOperations``; relies on its ``stack``, ``inodes`` and ``handles``."""

    stack: Stack
    inodes: InodeTable
    handles: HandleTable
    lock: trio.Lock
    stale: set[int]  # inodes whose attributes the kernel must fetch again
    owners: idmap.Owners  # stored ids <-> shown ids (uidmapping=, squash_to_*)
    mapped: bool  # whether owners is anything but the identity

    # -- bookkeeping ---------------------------------------------------------------------
    def _entry(self, ino: int, res: Resolved, unlinked: bool = False) -> pyfuse3.EntryAttributes:
        attrs = entry.attributes(ino, res, unlinked)
        if not unlinked and (shown := hardlinks.shown_nlink(self.stack, res)) is not None:
            attrs.st_nlink = shown  # an indexed copy: its overlay link count
        if self.mapped:
            attrs.st_uid, attrs.st_gid = self.owners.shown(attrs.st_uid, attrs.st_gid)
        return attrs

    def _owner(self, ctx: pyfuse3.RequestContext) -> create.Owner:
        """Who a new entry belongs to on disk: the caller, in stored ids."""
        if not self.mapped:
            return create.Owner(ctx.uid, ctx.gid)
        return create.Owner(self.owners.stored_uid(ctx.uid), self.owners.stored_gid(ctx.gid))

    async def _tell_kernel(self) -> None:
        """Drop the kernel's cached attributes of inodes that changed behind its back.

        Copying up one name of a lower hard link breaks the link (its nlink drops), and
        an open for writing has no attributes in its reply. Attribute-only invalidation
        takes no inode lock in the kernel; it still runs outside our lock, in a thread,
        as pyfuse3's notifications block until the kernel has taken them.
        """
        while self.stale:
            ino = self.stale.pop()
            try:
                await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino, True)
            except Exception as exc:  # no session (Operations under test), or forgotten
                log.debug("invalidating inode %d: %s", ino, exc)

    def _upper_check(self) -> None:
        if not self.stack.has_upper:
            raise _erofs()

    def _refresh_ancestors(self, path: bytes) -> None:
        """Directories above *path* may have been copied up: let their nodes know."""
        upper = self.stack.upper
        assert upper is not None
        while True:
            path, _ = split(path) if path else (b"", b"")
            node = self.inodes.dir_at(path)
            if node is not None and node.res.top != 0:
                st = upper.lstat(path)
                if st is None:
                    return  # not copied up: nothing above it was either
                self.inodes.update(node, node.res.under_upper(st))
            if not path:
                return

    @contextlib.contextmanager
    def _refreshed_on_failure(
        self, *paths: bytes, nodes: tuple[Node | None, ...] = ()
    ) -> Iterator[None]:
        """Refresh the directories above *paths* when the block fails: it may have copied a
        parent up before its error (ENOSPC, EXDEV), and the parent's node must then find
        its upper half, or later requests through it miss what is created there. So for
        *nodes* (a rename's source and target, copied up before the kernel's EXDEV for a
        redirect it cannot record): left as they were, a lookup would number the copy anew,
        and the kernel would hold two inodes, two dentries, for one directory."""
        try:
            yield
        except OSError:
            for path in paths:
                self._refresh_ancestors(path)
            for node in nodes:
                if node is not None and node.res.top != 0 and not node.unlinked:
                    found = resolve_path(self.stack, node.res.path)
                    if found is not None and found.top == 0 and found.is_dir == node.res.is_dir:
                        self.inodes.update(node, found, renamed=False)
            raise

    def _changed(self, node: Node, res: Resolved) -> None:
        self.inodes.update(node, res)
        self._refresh_ancestors(res.path)

    def _new_entry(self, parent_ino: int, res: Resolved) -> pyfuse3.EntryAttributes:
        self._refresh_ancestors(res.path)
        node = self.inodes.remember(res, parent_ino)
        return self._entry(node.ino, node.res)

    async def _copied_up(self, node: Node, data: bool = True, meta: bool = False) -> Resolved:
        """*node* copied up (in a thread when there is much data to copy). Without *meta*
        a metacopy file gets its data (or, without *data*, loses its mark)."""
        res = node.res
        big = data and stat.S_ISREG(res.st.st_mode) and res.st.st_size >= THREAD_COPY_MIN
        if res.top != 0:
            if _breaks_link(res):
                self.stale.add(node.ino)  # the copy breaks a hard link: nlink changes
            metadata_only = meta and self.stack.features.metacopy
            if big and not metadata_only:
                res = await trio.to_thread.run_sync(copy_up, self.stack, res, data)
            else:
                res = copy_up(self.stack, res, data, meta)
            self._changed(node, res)
        if res.metacopy and not meta:
            if big:
                res = await trio.to_thread.run_sync(copy_up_data, self.stack, res, data)
            else:
                res = copy_up_data(self.stack, res, data)
            self._changed(node, res)
        return res

    def _dir(self, ino: int) -> Node:
        """The node of directory inode *ino* (ENOTDIR for anything else)."""
        node = self.inodes.get(ino)
        if not node.res.is_dir:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return node

    # -- creating ------------------------------------------------------------------------
    @handler
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.lock:
            parent = self._dir(parent_inode)
            with self._refreshed_on_failure(join(parent.res.path, name)):
                res = create.mkdir(self.stack, parent.res, name, mode, self._owner(ctx))
            return self._new_entry(parent_inode, res)

    @handler
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.lock:
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            with self._refreshed_on_failure(join(parent.res.path, name)):
                res = create.mknod(self.stack, parent.res, name, mode, rdev, owner)
            return self._new_entry(parent_inode, res)

    @handler
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.lock:
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            with self._refreshed_on_failure(join(parent.res.path, name)):
                res = create.symlink(self.stack, parent.res, name, target, owner)
            return self._new_entry(parent_inode, res)

    @handler
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._upper_check()
        async with self.lock:
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            with self._refreshed_on_failure(join(parent.res.path, name)):
                res = create.create_file(self.stack, parent.res, name, mode, owner)
            attrs_ = self._new_entry(parent_inode, res)
            assert self.stack.upper is not None
            fd = self.stack.upper.open(res.path, backing_flags(flags))
        fh = self.handles.open_file(FileHandle(fd, attrs_.st_ino, True, True))
        return pyfuse3.FileInfo(fh=fh, keep_cache=True), attrs_

    @handler
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.lock:
            node = self.inodes.get(inode)
            parent = self._dir(new_parent_inode)
            if not node.res.is_dir:
                # The new name's checks come first (the VFS's), then the kernel's EXDEV
                # for a redirect it could not record; only then the copy-up.
                create.check_new(self.stack, parent.res, new_name)
                redirect.check_file_redirect(self.stack, node.res, samedir=False)
            await self._copied_up(node, meta=True)
            with self._refreshed_on_failure(join(parent.res.path, new_name)):
                source, res = link.link(self.stack, node.res, parent.res, new_name)
            self._changed(node, source)
            made = self._new_entry(new_parent_inode, res)
        await self._tell_kernel()
        return made

    # -- removing ------------------------------------------------------------------------
    def _gone(self, res: Resolved, node: Node | None = None) -> None:
        """*res* lost its name: its node (*node*, found before the change when a copy-up
        may have changed the file's identity) resolves by another name, or is unlinked."""
        node = node or self.inodes.node_of(res)
        if node is not None:
            self._lost(node, res.path)

    def _lost(self, node: Node, path: bytes) -> None:
        """*node* is no longer found at *path*."""
        if not self.inodes.lost_name(node, path):
            node.unlinked = True
        elif self.stack.features.index and not node.res.is_dir:
            # Another name of an indexed hard link: resolve it for real (it may be linked
            # up, or still a lower name that shows the indexed copy).
            found = resolve_path(self.stack, node.res.path)
            if found is not None and not found.is_dir:
                self.inodes.update(node, found, renamed=False)

    @handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._upper_check()
        async with self.lock:
            parent = self._dir(parent_inode)
            before = lookup(self.stack, parent.res, name)
            node = self.inodes.node_of(before) if before is not None else None
            res = remove.unlink(self.stack, parent.res, name)
            self._refresh_ancestors(res.path)
            self._gone(res, node)

    @handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._upper_check()
        async with self.lock:
            parent = self._dir(parent_inode)
            res = remove.rmdir(self.stack, parent.res, name)
            self._refresh_ancestors(res.path)
            self._gone(res)

    @handler
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self._upper_check()
        async with self.lock:
            old_parent = self._dir(parent_inode_old)
            new_parent = self._dir(parent_inode_new)
            before = lookup(self.stack, old_parent.res, name_old)
            target = lookup(self.stack, new_parent.res, name_new)
            mover = self.inodes.node_of(before) if before else None
            other = self.inodes.node_of(target) if target else None
            old_path = join(old_parent.res.path, name_old)
            new_path = join(new_parent.res.path, name_new)
            with self._refreshed_on_failure(old_path, new_path, nodes=(mover, other)):
                moved, replaced = rename_rules.rename(
                    self.stack, old_parent.res, name_old, new_parent.res, name_new, flags
                )
            self._after_rename(old_path, moved, replaced, flags, mover, other)
            for was, node in ((before, mover), (target, other)):
                if node is not None and was is not None and _breaks_link(was):
                    self.stale.add(node.ino)  # copied up: a hard link broke
        await self._tell_kernel()

    def _after_rename(
        self,
        old_path: bytes,
        moved: Resolved,
        replaced: Resolved | None,
        flags: int,
        mover: Node | None,
        other: Node | None,
    ) -> None:
        self._refresh_ancestors(moved.path)
        self._refresh_ancestors(old_path)
        if moved.path == old_path:
            return
        exchanged = bool(flags & pyfuse3.RENAME_EXCHANGE)
        if exchanged:
            parking = b"\0exchange"
            self.inodes.moved(old_path, parking)
            self.inodes.moved(moved.path, old_path)
            self.inodes.moved(parking, moved.path)
        else:
            self.inodes.moved(old_path, moved.path)
        if mover is not None:
            self.inodes.renamed(mover, old_path, moved)
        if other is not None and replaced is not None and other is not mover:
            if exchanged:
                self.inodes.renamed(other, moved.path, replaced)
            else:
                self._lost(other, moved.path)
