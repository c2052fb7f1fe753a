"""The FUSE handlers that add, remove and move names: mkdir, mknod, symlink, create,
link, unlink, rmdir, rename.

Each runs under the mutation lock (``MountState.changing``), calls one ``union`` rule, and
then brings the inode table up to date: the new entry is remembered, a removed name is
dropped from its node (which lives on while open), a rename moves the paths of the nodes
below. Directories the rule copied up on the way are followed through ``union``'s report.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import pyfuse3

from unionfs.fuse import kernelcache
from unionfs.fuse.edge import handler
from unionfs.fuse.handles import FileHandle, backing_flags
from unionfs.fuse.inodes import Node
from unionfs.fuse.state import MountState, breaks_link
from unionfs.safepath import join
from unionfs.union import create, link, remove, tmpfile
from unionfs.union import rename as rename_rules
from unionfs.union.held import Held
from unionfs.union.lookup import lookup, resolve_path
from unionfs.union.stack import Resolved, Stack

Remover = Callable[[Stack, Resolved, bytes, Resolved | None], Resolved]


class NameHandlers(MountState):
    """mkdir, mknod, symlink, create, link, unlink, rmdir, rename."""

    # -- creating ------------------------------------------------------------------------
    @handler
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            res = create.mkdir(self.stack, parent.res, name, mode, owner, self._umask(ctx))
            return self._new_entry(parent_inode, res)

    @handler
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            umask = self._umask(ctx)
            res = create.mknod(self.stack, parent.res, name, mode, rdev, owner, umask)
            return self._new_entry(parent_inode, res)

    @handler
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            res = create.symlink(self.stack, parent.res, name, target, owner)
            return self._new_entry(parent_inode, res)

    @handler
    async def create(
        self,
        parent_inode: int,
        name: bytes,
        mode: int,
        flags: int,
        ctx: pyfuse3.RequestContext,
        kill_suidgid: bool = False,  # kill-priv v2: a new file has no set-id bits to clear
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            umask = self._umask(ctx)
            backing = backing_flags(flags)
            res, fd = create.create_open(
                self.stack, parent.res, name, mode, owner, umask, backing
            )
            try:
                self._follow_copies()
                node = self.inodes.remember(res, parent_inode, made=True)
                attrs_ = self._attrs(node)
            except BaseException:
                os.close(fd)
                raise
        fh = self.handles.open_file(FileHandle(fd, node.ino, True, True, flags=backing))
        return self._file_info(fh, node.ino, writes=True, flags=flags), attrs_

    @handler
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.changing():
            node = self.inodes.get(inode)
            parent = self._dir(new_parent_inode)
            if node.held is not None:  # an unnamed file (O_TMPFILE): the kernel's VFS
                # lets no other file with no name left be linked (``tmpfile``)
                res = tmpfile.link(self.stack, node.held, parent.res, new_name)
                _flush_due(node)
                return self._new_entry(new_parent_inode, res, made=False)
            # Every check comes before the copy-up, and runs once.
            over_whiteout = link.check(self.stack, node.res, parent.res, new_name)
            await self._copied_up(node, meta=True)
            source, res = link.link(
                self.stack, node.res, parent.res, new_name, True, over_whiteout
            )
            self._changed(node, source)
            _flush_due(node)
            made = self._new_entry(new_parent_inode, res, made=False)
        await self._tell_kernel()
        return made

    # -- removing ------------------------------------------------------------------------
    def _hold(self, node: Node | None, res: Resolved | None) -> Held | None:
        """The upper file of *node* (found as *res*), held before a change may take its last
        name: the node may live on unlinked (``inodes``), served from that file. Not when
        the node has another name left: it then resolves by that one (``lost_name``), and
        the open and close are saved (unlink of one of many hard links)."""
        if node is None or res is None or res.top != 0 or self.stack.upper is None:
            return None
        if len(node.names) > (res.path in node.names):
            return None
        return Held.take(self.stack.upper, res.path)

    def _drop_pages(self, node: Node | None) -> None:
        """The kernel drops what it keeps of *node* besides attributes, a moved directory's
        listing (its ``..``) or a symlink's target, once the change is done: a node number
        may come to name another entry (the kernel does so only for the parents it locked)."""
        if node is not None and kernelcache.keeps_pages(node.res):
            self.stale_pages.add(node.ino)

    def _lost(self, node: Node, path: bytes, held: Held | None = None) -> None:
        """*node* is no longer found at *path*; *held* is its file, if it was upper."""
        if not self.inodes.lost_name(node, path, held):
            return
        if self.stack.features.index and not node.res.is_dir:
            # Another name of an indexed hard link: resolve it for real (it may be linked
            # up, or still a lower name that shows the indexed copy).
            found = resolve_path(self.stack, node.res.path)
            if found is not None and not found.is_dir:
                self.inodes.update(node, found, renamed=False)

    async def _remove(self, parent_inode: int, name: bytes, rule: Remover) -> None:
        """Remove *name* by *rule* (``remove.unlink`` or ``remove.rmdir``); its node, found
        before the change (a copy-up may change the file's identity), lives on unlinked
        or resolves by another of its names."""
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            before = lookup(self.stack, parent.res, name)
            node = self.inodes.node_of(before) if before is not None else None
            held = self._hold(node, before)
            try:
                res = rule(self.stack, parent.res, name, before)
            except BaseException:
                if held is not None:
                    held.close()
                raise
            self._follow_copies()
            node = node or self.inodes.node_of(res)
            if node is not None:
                _flush_due(node)
                self._lost(node, res.path, held)
            elif held is not None:
                held.close()
            self._drop_pages(node)
        await self._tell_kernel()

    @handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, remove.unlink)

    @handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, remove.rmdir)

    # -- renaming ------------------------------------------------------------------------
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
        async with self.changing():
            old_parent = self._dir(parent_inode_old)
            new_parent = self._dir(parent_inode_new)
            before = lookup(self.stack, old_parent.res, name_old)
            target = lookup(self.stack, new_parent.res, name_new)
            mover = self.inodes.node_of(before) if before else None
            other = self.inodes.node_of(target) if target else None
            exchange = bool(flags & pyfuse3.RENAME_EXCHANGE)
            held = None if exchange or other is mover else self._hold(other, target)
            try:
                moved, replaced = rename_rules.rename(
                    self.stack, old_parent.res, name_old, new_parent.res, name_new, flags
                )
            except BaseException:
                if held is not None:
                    held.close()
                raise
            self._follow_copies()  # before the paths below move: copies are at old paths
            old_path = join(old_parent.res.path, name_old)
            self._after_rename(old_path, moved, replaced, flags, mover, other, held)
            # A directory's ".." (readdir) is the directory it is in now.
            if mover is not None and moved.path != old_path:
                mover.parent = parent_inode_new
                if other is not None and flags & pyfuse3.RENAME_EXCHANGE:
                    other.parent = parent_inode_old
            for was, node in ((before, mover), (target, other)):
                if node is not None:
                    _flush_due(node)
                if node is not None and was is not None and breaks_link(was):
                    self.stale.add(node.ino)  # copied up: a hard link broke
                self._drop_pages(node)
        await self._tell_kernel()

    def _after_rename(
        self,
        old_path: bytes,
        moved: Resolved,
        replaced: Resolved | None,
        flags: int,
        mover: Node | None,
        other: Node | None,
        held: Held | None,
    ) -> None:
        if moved.path == old_path:
            if held is not None:
                held.close()
            return
        exchanged = bool(flags & pyfuse3.RENAME_EXCHANGE)
        if exchanged:
            parking = b"\0exchange"
            self.inodes.moved(old_path, parking)
            self.inodes.moved(moved.path, old_path)
            self.inodes.moved(parking, moved.path)
        elif moved.is_dir:  # only a directory has paths below it (a scan of every node)
            self.inodes.moved(old_path, moved.path)
        if mover is not None:
            self.inodes.renamed(mover, old_path, moved)
        if other is not None and replaced is not None and other is not mover:
            if exchanged:
                self.inodes.renamed(other, moved.path, replaced)
            else:
                self._lost(other, moved.path, held)
                held = None
        if held is not None:
            held.close()


def _flush_due(node: Node) -> None:
    """The kernel marks the file *node* changed after a link, unlink or rename of it; under
    the write-back cache it then sends the times it holds at once, the same mtime (a
    regular file's only: it keeps no other's times)."""
    if stat.S_ISREG(node.res.st.st_mode):
        node.flush_due = True
