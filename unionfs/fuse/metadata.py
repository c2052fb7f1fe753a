"""The FUSE handlers that change an entry's metadata in place: setattr (chmod, chown,
truncate, utimens) and extended attributes.

Each copies the entry up first (only its metadata where ``metacopy=on`` allows it), then
changes the upper copy, under the mutation lock (``MountState.changing``); set-id bits
are cleared where the VFS would and FUSE did not, or the kernel asks (kill-priv v2:
``killpriv``). A file with no name left
changes through the file itself (``held``), as on the kernel.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat

import pyfuse3

from unionfs import layerfmt
from unionfs.fuse import killpriv
from unionfs.fuse.edge import handler
from unionfs.fuse.inodes import Node
from unionfs.fuse.state import MountState
from unionfs.union import attrs


class MetadataHandlers(MountState):
    """setattr, setxattr, removexattr."""

    @handler
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        self._upper_check()
        named = (fields.update_mode, fields.update_uid, fields.update_gid,
                 fields.update_size, fields.update_atime, fields.update_mtime)  # fmt: skip
        changes = attrs.Changes(
            mode=attr.st_mode if fields.update_mode else None,
            uid=self.owners.stored_uid(attr.st_uid) if fields.update_uid else None,
            gid=self.owners.stored_gid(attr.st_gid) if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            # chown(-1, -1) marks the inode changed. The kernel says so (FATTR_CTIME) only
            # for a regular file under the write-back cache; otherwise it sends a setattr
            # with no field at all, which means the same.
            ctime=bool(fields.update_ctime) or not any(named),
        )
        async with self.changing():
            node = self.inodes.get(inode)
            flush, node.flush_due = node.flush_due, False
            fd = None
            if fh is not None:
                handle = self.handles.file(fh)
                fd = handle.fd if handle.writable else None
            if any(named[:4]) or not any(named):  # a chown, chmod, truncate or write
                # An empty request is a chown to -1, -1, or the write of a regular file
                # (which alone comes without the ctime that the write-back cache adds).
                empty = not any(named)
                regular = stat.S_ISREG(node.res.st.st_mode)
                chown = fields.update_uid or fields.update_gid
                chown = chown or (empty and (fields.update_ctime or not regular))
                if getattr(fields, "kill_suidgid", False):
                    changes = self._killed(node, changes)
                changes = self._sgid_rule(node, changes, ctx, chown)
            if node.unlinked:
                return self._set_unlinked(node, changes, fd, flush)
            if not (changes.size == 0 or fd is not None):
                await self._copied_up(node, meta=changes.size is None)
            res = attrs.set_attributes(self.stack, node.res, changes, fd, flush)
            self._changed(node, res)
            answer = self._attrs(node)
        await self._tell_kernel()  # a copy-up that broke a hard link
        return answer

    def _killed(self, node: Node, changes: attrs.Changes) -> attrs.Changes:
        """*changes* with the set-id bits cleared that kill-priv v2 asks to clear (a
        truncate without CAP_FSETID, or a chown)."""
        mode = node.res.st.st_mode if changes.mode is None else changes.mode
        after = killpriv.cleared(stat.S_IFMT(node.res.st.st_mode) | stat.S_IMODE(mode))
        if stat.S_IMODE(after) == stat.S_IMODE(mode):
            return changes
        return dataclasses.replace(changes, mode=after)

    def _set_unlinked(
        self, node: Node, changes: attrs.Changes, fd: int | None, flush: bool
    ) -> pyfuse3.EntryAttributes:
        """A file with no name left changes through the file itself (``held``), as the
        kernel's overlay inode changes its upper inode."""
        if node.held is not None:
            attrs.set_attributes_held(node.held, changes, fd, flush)
            return self._held_attrs(node)
        if dataclasses.replace(changes, ctime=False) == attrs.Changes(
            mtime_ns=node.res.st.st_mtime_ns
        ):
            # The write-back cache flushing its (unchanged) mtime, as fsync does: not a
            # change, and fsync of a lower file must not fail.
            return self._attrs(node, unlinked=True)
        # A lower file, never copied up: the kernel cannot copy up what has no name left,
        # and says EEXIST.
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))

    @handler
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        self._upper_check()
        async with self.changing():
            node = self.inodes.get(inode)
            keep = not attrs.drops_sgid(name, value) or self._acl_keeps_sgid(node, ctx)
            if node.held is not None:
                attrs.set_xattr_held(node.held, name, value, self.stack.private, keep)
                return
            if node.unlinked:
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))  # as _set_unlinked
            await self._copied_up(node, meta=True)
            res = attrs.set_xattr(self.stack, node.res, name, value, keep)
            self._changed(node, self._fresh(res))
        await self._tell_kernel()

    def _acl_keeps_sgid(self, node: Node, ctx: pyfuse3.RequestContext) -> bool:
        """Whether the caller setting an access ACL on *node* keeps its S_ISGID (``killpriv``)."""
        st = node.res.st if node.held is None else node.held.stat()
        if not st.st_mode & stat.S_ISGID:
            return True
        gid = self.owners.shown(st.st_uid, st.st_gid)[1] if self.mapped else st.st_gid
        return killpriv.acl_keeps_sgid(gid, ctx.uid, ctx.gid, ctx.pid)

    @handler
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._upper_check()
        async with self.changing():
            node = self.inodes.get(inode)
            if node.held is not None:
                node.held.removexattr(layerfmt.escape_xattr(name, self.stack.private))
                return
            if node.unlinked:  # as _set_unlinked, once the name is found to be there
                layer, path = self.stack.meta_of(node.res)
                if layer.getxattr(path, layerfmt.escape_xattr(name, self.stack.private)) is None:
                    raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
            res = attrs.remove_xattr(self.stack, node.res, name)
            self._changed(node, self._fresh(res))
        await self._tell_kernel()
