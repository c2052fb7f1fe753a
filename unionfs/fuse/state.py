"""What every FUSE handler shares: the state of one mount, and the bookkeeping of a change.

``MountState`` holds the stack, the inode and handle tables, the mutation lock and the set
of inodes whose cached attributes the kernel must drop; the handler groups (``reading``,
``files``, ``names``, ``metadata``) are its siblings, each a subclass that uses only
this. A change runs under ``changing()``: the lock, and at its end (done or failed) the
nodes of whatever ``union`` reports it copied up follow their copies. Holds no rule of
the overlay: those are ``union``'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import posixpath
import stat
from collections.abc import AsyncIterator

import pyfuse3
import trio

from unionfs import idmap, safepath
from unionfs.fuse import entry, features, kernelcache, killpriv, lazyhook
from unionfs.fuse.handles import FileHandle, HandleTable
from unionfs.fuse.inodes import InodeTable, Node
from unionfs.fuse.passthrough import CACHED, Backings
from unionfs.fuse.room import UpperSpace
from unionfs.union import attrs, create, hardlinks
from unionfs.union.atime import RELATIME, AtimePolicy, Toucher
from unionfs.union.copyup import copy_up, copy_up_data, shown_ino
from unionfs.union.stack import Resolved, Stack

log = logging.getLogger("unionfs.fuse")

# Data copy-ups above this size leave the trio thread (a thread hop costs ~100 us).
THREAD_COPY_MIN = 1 << 20


def _number(stack: Stack, res: Resolved, made: bool) -> int | None:
    """The inode number *res* shows (``shown_ino``); an entry made just now through the
    mount has recorded none: its own (one getxattr less per create)."""
    return stack.own_ino(res.st) if made else shown_ino(stack, res)


def breaks_link(res: Resolved) -> bool:
    """Copying up *res* breaks a hard link (its count changes behind the kernel's cache)."""
    return res.top != 0 and not res.is_dir and res.st.st_nlink > 1


def _passes(handle: FileHandle, flags: int, lowers_too: bool) -> bool:
    """Whether a new backing may be registered for *handle* (``-o passthrough``): a regular
    file of the upper (a lower one only with *lowers_too*, on a mount without an upper,
    where nothing is ever copied up: see ``passthrough``), whose data is here (not a lazy
    layer's yet to come), not opened with O_DIRECT, without set-id bits: a write must clear
    them (by the caller's credentials and group, ``killpriv``), and a write through a
    backing file is done with ours, which keep them."""
    if not (handle.upper or lowers_too) or handle.lazy is not None or flags & os.O_DIRECT:
        return False
    mode = os.fstat(handle.fd).st_mode
    return stat.S_ISREG(mode) and not mode & (stat.S_ISUID | stat.S_ISGID)


class MountState(pyfuse3.Operations):
    """The state of one mount. Invariants: ``inodes`` holds every inode the kernel
    references; every change of a layer happens under ``lock`` (``changing``), and a
    node's ``res`` is how its entry resolves once that change is done.

    Concurrency (pyfuse3 runs every handler as a task on one trio thread): between two
    awaits a handler runs alone, so the tables need no lock as long as no handler awaits
    in the middle of changing them; work sent to a thread (a big copy-up) holds ``lock``.
    """

    def __init__(
        self,
        stack: Stack,
        owners: idmap.Owners = idmap.IDENTITY,
        atime: AtimePolicy = RELATIME,
        separate_ids: bool = "node_id" in features.available(),
    ) -> None:
        super().__init__()
        self.stack = stack
        # Upper atimes follow the mount's flags; ``atime.policy`` changes on a remount.
        self.atime = None if stack.upper is None else Toucher(stack.upper, atime)
        self.owners = owners  # stored ids <-> shown ids (uidmapping=, squash_to_*)
        self.mapped = not owners.identity
        # With index=on the names of a lower hard link stay one inode (the kernel's too).
        self.inodes = InodeTable(stack.root(), stack.has_upper and not stack.features.index,
                                 lambda res, made: _number(stack, res, made),
                                 separate_ids=separate_ids)  # fmt: skip
        self.handles = HandleTable()
        self.lock = trio.Lock()
        self.stale: set[int] = set()  # inodes whose attributes the kernel must fetch again
        # Changes done so far (``changing``): a listing begun before the last one describes
        # its entries anew when it goes on (``reading.readdir``).
        self.changes = 0
        self.stale_pages: set[int] = set()  # ... and its pages too (a listing, a link target)
        # Inodes whose file pages the kernel may hold: read, or written through its cache,
        # since the last drop (``files``: what a direct write must drop).
        self.paged: set[int] = set()
        upper = stack.upper
        self.room = UpperSpace(None if upper is None else upper.statvfs,
                                can_refuse="getattr_fh" in features.available())  # fmt: skip
        self.lazy: lazyhook.LazyData | None = None  # lazily pulled lowers, if any
        # -o passthrough (``passthrough_on``): the io mode of every open inode.
        self.backings: Backings | None = None
        self.unmasked = False  # modes come unmasked, with the umask beside them (init)

    # -- answers -------------------------------------------------------------------------
    def _shown(self, number: int, res: Resolved, unlinked: bool = False) -> pyfuse3.EntryAttributes:
        """The attributes of *res*, showing inode number *number* (no node id yet)."""
        attrs_ = entry.attributes(number, res, unlinked)
        if not unlinked and (shown := hardlinks.shown_nlink(self.stack, res)) is not None:
            attrs_.st_nlink = shown  # an indexed copy: its overlay link count
        if self.mapped:
            attrs_.st_uid, attrs_.st_gid = self.owners.shown(attrs_.st_uid, attrs_.st_gid)
        return attrs_

    def _identified(self, attrs_: pyfuse3.EntryAttributes, ino: int) -> pyfuse3.EntryAttributes:
        """*attrs_* naming node id *ino* (without separate ids, the number is the id)."""
        if self.inodes.separate_ids:
            attrs_.node_id = ino
        if ino in self.room.watched:
            attrs_.attr_timeout = 0  # the kernel asks before each write into its cache
        return attrs_

    def _attrs(self, node: Node, unlinked: bool = False) -> pyfuse3.EntryAttributes:
        return self._identified(self._shown(node.number, node.res, unlinked), node.ino)

    def _held_attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        """The attributes of an unlinked node kept by its file: that file's, now (its link
        count is 0, or more if another name of an upper hard link is left)."""
        assert node.held is not None
        node.res = node.res.with_st(node.held.stat())
        attrs_ = self._shown(node.number, node.res, unlinked=True)
        attrs_.st_nlink = node.res.st.st_nlink
        return self._identified(attrs_, node.ino)

    def _dir(self, ino: int) -> Node:
        """The node of directory inode *ino* (ENOTDIR for anything else)."""
        node = self.inodes.get(ino)
        if not node.res.is_dir:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return node

    def _owner(self, ctx: pyfuse3.RequestContext) -> create.Owner:
        """Who a new entry belongs to on disk: the caller, in stored ids."""
        if not self.mapped:
            return create.Owner(ctx.uid, ctx.gid)
        return create.Owner(self.owners.stored_uid(ctx.uid), self.owners.stored_gid(ctx.gid))

    def _file_info(self, fh: int, ino: int, writes: bool, flags: int = 0) -> pyfuse3.FileInfo:
        """The reply to an open of handle *fh* with open *flags*: a writer uses the
        write-back cache only while the upper has room for all the kernel may cache
        (``space``), else direct I/O, so that write(2) itself meets a full upper, as under
        kernel overlayfs. A writer opened with O_DIRECT always gets direct I/O: none of its
        writes then passes through the page cache, so after each one the inode's pages may
        be dropped before the answer (``files``: a direct write leaves no stale page)."""
        if self.backings is not None:
            return self._passthrough_info(self.backings, fh, ino, writes, flags)
        if not writes:
            # Every change goes through this mount, so the kernel's pages stay valid.
            return pyfuse3.FileInfo(fh=fh, keep_cache=True)
        if not flags & os.O_DIRECT and self.room.may_cache():
            self.room.opened(fh, ino)
            return pyfuse3.FileInfo(fh=fh, keep_cache=True)
        return pyfuse3.FileInfo(fh=fh, keep_cache=True, direct_io=True)

    def passthrough_on(self) -> None:
        """Serve open files of the upper by FUSE passthrough (``-o passthrough``): before
        ``pyfuse3.init``. The kernel ignores passthrough under the write-back cache, so the
        mount goes without it: a writer that is not passed through gets direct I/O."""
        self.enable_passthrough = True
        self.enable_writeback_cache = False
        self.backings = Backings(pyfuse3.passthrough_open, pyfuse3.passthrough_close)

    def _passthrough_info(
        self, backings: Backings, fh: int, ino: int, writes: bool, flags: int
    ) -> pyfuse3.FileInfo:
        """The reply to an open under ``-o passthrough`` (``passthrough``'s rules): the
        inode's backing if it has one; else a backing for a file whose data is on the upper
        while no open of the inode goes through the page cache; else the page cache for a
        reader and direct I/O for a writer (never write-through: its pages would be locked
        while the kernel waits for our answer, and ``_drop_stale_pages`` would wait on
        them)."""
        handle = self.handles.file(fh)
        backing = backings.backing_of(ino)
        passes = backing is None and _passes(handle, flags, not self.stack.has_upper)
        if passes or backing not in (None, CACHED):
            opened: list[int] = []

            # The upper's for reading and writing (the opens sharing it may do both); a
            # lower's (no upper) for reading, leaving its atime alone as the kernel's does.
            how = os.O_RDWR if handle.upper else os.O_RDONLY | os.O_NOATIME

            def descriptor() -> int:
                opened.append(os.open(safepath.proc_fd_path(handle.fd), how | os.O_CLOEXEC))
                return opened[-1]

            try:
                got = backings.passthrough(fh, ino, descriptor)
            finally:
                for fd in opened:
                    os.close(fd)
            if got is not None:
                return pyfuse3.FileInfo(fh=fh, backing_id=got)
        if writes:
            return pyfuse3.FileInfo(fh=fh, keep_cache=True, direct_io=True)
        return pyfuse3.FileInfo(fh=fh, keep_cache=backings.cached(fh, ino))

    def init(self) -> None:
        """The kernel's INIT is answered: whether it leaves the umask to us (see ``_umask``)."""
        offered: frozenset[str] = getattr(pyfuse3, "kernel_capabilities", frozenset())
        self.unmasked = bool(getattr(self, "enable_dont_mask", False)) and (
            "dont_mask" in offered
        )
        if self.backings is not None and "passthrough" not in offered:
            log.warning(
                "passthrough: the kernel does not offer FUSE passthrough "
                "(CONFIG_FUSE_PASSTHROUGH); open files are served by this process"
            )
            self.backings = None

    def _umask(self, ctx: pyfuse3.RequestContext) -> int | None:
        """The caller's umask if the mode of its create, mkdir or mknod is not masked yet
        (FUSE_DONT_MASK): ``create`` applies it unless a default ACL takes its place. None:
        the kernel has masked the mode (a binding or kernel without FUSE_DONT_MASK)."""
        return int(ctx.umask) if self.unmasked else None

    def _upper_check(self) -> None:
        if not self.stack.has_upper:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def _sgid_rule(
        self, node: Node, changes: attrs.Changes, ctx: pyfuse3.RequestContext, chown: bool
    ) -> attrs.Changes:
        """*changes*, clearing S_ISGID where the VFS would and FUSE did not (``killpriv``)."""
        st = node.res.st
        bits = st.st_mode if changes.mode is None else changes.mode
        mode = stat.S_IFMT(st.st_mode) | stat.S_IMODE(bits)
        uid, gid = (
            self.owners.shown(st.st_uid, st.st_gid) if self.mapped else (st.st_uid, st.st_gid)
        )
        after = killpriv.sgid_after(mode, uid, gid, ctx.uid, ctx.gid, ctx.pid, chown)
        return changes if after == mode else dataclasses.replace(changes, mode=after)

    def _truncate_rule(self, node: Node, ctx: pyfuse3.RequestContext) -> attrs.Changes:
        """The mode change an open with O_TRUNC by *ctx* makes (``killpriv.suidgid_after``):
        the kernel's truncate of such an open never reaches us as a setattr."""
        st = node.res.st
        gid = self.owners.shown(st.st_uid, st.st_gid)[1] if self.mapped else st.st_gid
        after = killpriv.suidgid_after(st.st_mode, gid, ctx.uid, ctx.gid, ctx.pid)
        return attrs.Changes() if after == st.st_mode else attrs.Changes(mode=after)

    # -- the bookkeeping of a change -----------------------------------------------------
    @contextlib.asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """Hold the mutation lock for one change; when it ends, done or failed, the nodes
        of what it copied up follow (a change may copy parents up before it fails, on
        ENOSPC or the kernel's EXDEV: their nodes must find the upper half, or later
        requests through them miss what is made there, and a lookup would number a copied
        directory anew: the kernel would hold two inodes for one directory)."""
        # Taken without a checkpoint when free, the common case: trio.Lock's own acquire
        # always yields to the scheduler once (a round through the run queue per change,
        # ~7% of the daemon's CPU). Nothing is lost: a free lock has no waiter to be fair
        # to, and the handler's next await (the reply) is a checkpoint anyway.
        if self.lock.locked():
            await self.lock.acquire()
        else:
            self.lock.acquire_nowait()
        try:
            yield
        finally:
            self.changes += 1
            try:
                self._follow_copies()
                if self.atime is not None:
                    self.atime.changed()  # times may have moved: relatime asks again
            finally:
                self.lock.release()

    def _follow_copies(self) -> None:
        """Nodes of the entries ``union`` reports copied up now resolve as their copies."""
        for copy in self.stack.take_copies():
            node = self.inodes.node_of(copy.before)
            if node is not None and not node.unlinked:
                self.inodes.update(node, copy.after, renamed=False)

    def _changed(self, node: Node, res: Resolved) -> None:
        broke = res.top == 0 and breaks_link(node.res)  # before its copy is followed
        self._follow_copies()
        if broke:
            self.stale.add(node.ino)  # the copy broke a hard link: nlink changes
            self._renumbered(res.path)
        self.inodes.update(node, res)

    def _new_entry(
        self, parent_ino: int, res: Resolved, made: bool = True
    ) -> pyfuse3.EntryAttributes:
        """The reply for entry *res*, new in *parent_ino*; *made*: a file made just now
        (not a new name of an existing one)."""
        self._follow_copies()
        node = self.inodes.remember(res, parent_ino, made=made)
        return self._attrs(node)

    def _fresh(self, res: Resolved) -> Resolved:
        layer, path = self.stack.meta_of(res)
        st = layer.lstat(path)
        return res if st is None else res.with_st(st)

    async def _copied_up(self, node: Node, data: bool = True, meta: bool = False) -> Resolved:
        """*node* copied up (in a thread when there is much data to copy). Without *meta*
        a metacopy file gets its data (or, without *data*, loses its mark)."""
        res = node.res
        big = data and stat.S_ISREG(res.st.st_mode) and res.st.st_size >= THREAD_COPY_MIN
        if data and stat.S_ISREG(res.st.st_mode) and (res.top != 0 or res.metacopy):
            await self._lazy_whole(self._lazy_where(res))
        if res.top != 0:
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

    def _renumbered(self, path: bytes) -> None:
        """The entry at *path* shows another inode number now (a broken hard link): the
        listing of its directory that the kernel keeps has the old one as d_ino."""
        parent = self.inodes.dir_at(posixpath.dirname(path))
        if parent is not None and kernelcache.CACHE_READDIR:
            self.stale_pages.add(parent.ino)

    def _lazy_where(self, res: Resolved) -> tuple[str, bytes] | None:
        """Where *res*'s data is when that is a lazy layer's file not yet whole, else None."""
        if self.lazy is None:
            return None
        found = lazyhook.where(*self.stack.data_of(res))
        return found if found is not None and self.lazy.pending(*found) else None

    async def _lazy_whole(self, lazy: tuple[str, bytes] | None) -> None:
        """Make a lazy file whole before its placeholder is read as data (a copy)."""
        if lazy is not None and self.lazy is not None and self.lazy.pending(*lazy):
            await trio.to_thread.run_sync(self.lazy.fill, *lazy)

    def _follow_copy_up(self, handle: FileHandle) -> None:
        """A handle opened on a lower file reads the copy once there is one (the kernel's
        stacked file does the same), or it would read stale data after a copy-up."""
        node = self.inodes.find(handle.ino)
        if node is None or node.res.top != 0 or node.res.metacopy:
            return
        if node.unlinked:  # copied up, then unlinked: the copy is held, never by path
            if node.held is None:
                return
            fd = node.held.reopen(os.O_RDONLY | (handle.flags & os.O_NOATIME))
        else:
            upper = self.stack.upper
            assert upper is not None
            fd = upper.open(node.res.path, os.O_RDONLY | (handle.flags & os.O_NOATIME))
        self.handles.replace_fd(handle, fd, upper=True)

    async def _tell_kernel(self) -> None:
        """Drop the kernel's cached attributes of inodes that changed behind its back (of
        ``stale_pages``, their cached pages too: see ``kernelcache``).

        Copying up one name of a lower hard link breaks the link (its nlink drops), and
        an open for writing has no attributes in its reply. Attribute-only invalidation
        takes no inode lock in the kernel; it still runs outside our lock, in a thread,
        as pyfuse3's notifications block until the kernel has taken them.
        """
        while self.stale or self.stale_pages:
            pages = bool(self.stale_pages)
            ino = self.stale_pages.pop() if pages else self.stale.pop()
            try:
                await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino, not pages)
            except Exception as exc:  # no session (Operations under test), or forgotten
                log.debug("invalidating inode %d: %s", ino, exc)
