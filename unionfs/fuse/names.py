"""The FUSE handlers that add, remove and move names: mkdir, mknod, symlink, create,
link, unlink, rmdir, rename.

Each runs under the mutation lock (``MountState.changing``), calls one ``union`` rule, and
then brings the inode table up to date: the new entry is remembered, a removed name is
dropped from its node (which lives on while open), a rename moves the paths of the nodes
below. Directories the rule copied up on the way are followed through ``union``'s report.
"""

from __future__ import annotations

import pyfuse3

from unionfs.fuse.edge import handler
from unionfs.fuse.handles import FileHandle, backing_flags
from unionfs.fuse.inodes import Node
from unionfs.fuse.state import MountState, breaks_link
from unionfs.safepath import join
from unionfs.union import create, link, redirect, remove
from unionfs.union import rename as rename_rules
from unionfs.union.lookup import lookup, resolve_path
from unionfs.union.stack import Resolved


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
            res = create.mkdir(self.stack, parent.res, name, mode, self._owner(ctx))
            return self._new_entry(parent_inode, res)

    @handler
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            res = create.mknod(self.stack, parent.res, name, mode, rdev, owner)
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
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            owner = self._owner(ctx)
            res = create.create_file(self.stack, parent.res, name, mode, owner)
            attrs_ = self._new_entry(parent_inode, res)
            assert self.stack.upper is not None
            fd = self.stack.upper.open(res.path, backing_flags(flags))
        fh = self.handles.open_file(FileHandle(fd, attrs_.st_ino, True, True))
        return self._file_info(fh, attrs_.st_ino, writes=True), attrs_

    @handler
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        async with self.changing():
            node = self.inodes.get(inode)
            parent = self._dir(new_parent_inode)
            if not node.res.is_dir:
                # The new name's checks come first (the VFS's), then the kernel's EXDEV
                # for a redirect it could not record; only then the copy-up.
                create.check_new(self.stack, parent.res, new_name)
                redirect.check_file_redirect(self.stack, node.res, samedir=False)
            await self._copied_up(node, meta=True)
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
        async with self.changing():
            parent = self._dir(parent_inode)
            before = lookup(self.stack, parent.res, name)
            node = self.inodes.node_of(before) if before is not None else None
            res = remove.unlink(self.stack, parent.res, name)
            self._follow_copies()
            self._gone(res, node)

    @handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            res = remove.rmdir(self.stack, parent.res, name)
            self._follow_copies()
            self._gone(res)

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
            moved, replaced = rename_rules.rename(
                self.stack, old_parent.res, name_old, new_parent.res, name_new, flags
            )
            self._follow_copies()  # before the paths below move: copies are at old paths
            old_path = join(old_parent.res.path, name_old)
            self._after_rename(old_path, moved, replaced, flags, mover, other)
            for was, node in ((before, mover), (target, other)):
                if node is not None and was is not None and breaks_link(was):
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
