"""The toy file system (toyfs.py) with the binding features that need libfuse 3.17.

``killpriv_v2`` (clears set-user-ID/set-group-ID bits when the kernel says so and records each
``kill_suidgid`` it got), ``tmpfile`` (O_TMPFILE, and ``link`` to name such a file),
``passthrough`` (every open file gets a backing id, shared by the opens of one inode and
released with the last of them) and ``no_export``. toymount.py runs this file; without these
features it behaves as toyfs.py. Test scaffolding, like toyfs.py.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from typing import Any

import pyfuse3
from toyfs import ToyFs, main

CAPABILITY = "security.capability"
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
_libc = ctypes.CDLL(None, use_errno=True)


def link_fd(fd: int, target: bytes) -> None:
    """linkat(2) an open file (an O_TMPFILE one too) to *target*; needs CAP_DAC_READ_SEARCH.
    (linkat of /proc/self/fd/N gives EXDEV here, even on a plain directory.)"""
    if _libc.linkat(fd, b"", AT_FDCWD, target, AT_EMPTY_PATH) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class ToyFs317(ToyFs):
    def __init__(self, backing: bytes, features: set[str]) -> None:
        super().__init__(backing, features)
        self.enable_killpriv_v2 = "killpriv_v2" in features
        self.enable_passthrough = "passthrough" in features
        self.kills: dict[str, list[bool]] = {}  # handler -> kill_suidgid of each call
        self.tmp_fds: dict[int, int] = {}  # node of an unnamed (O_TMPFILE) file -> its fd
        self.fh_nodes: dict[int, int] = {}  # passthrough: file handle -> node
        self.backing_ids: dict[int, list[int]] = {}  # node -> [backing id, open count]
        self.passthrough_errors: list[str] = []

    def _stats(self) -> dict[str, Any]:
        stats = super()._stats()
        stats["kills"] = self.kills
        stats["passthrough_errors"] = self.passthrough_errors
        stats["kernel_capabilities"] = sorted(pyfuse3.kernel_capabilities)
        return stats

    def _kill(self, handler: str, fd: int, kill_suidgid: bool, remove_caps: bool) -> None:
        """What a KILLPRIV_V2 file system owes the kernel (the VFS's rules)."""
        self.kills.setdefault(handler, []).append(kill_suidgid)
        if remove_caps:
            try:
                os.removexattr(fd, CAPABILITY)
            except OSError as exc:
                if exc.errno != errno.ENODATA:
                    raise
        mode = os.fstat(fd).st_mode
        if kill_suidgid and stat.S_ISREG(mode):
            drop = stat.S_ISUID | (stat.S_ISGID if mode & stat.S_IXGRP else 0)
            if mode & drop:
                os.fchmod(fd, stat.S_IMODE(mode) & ~drop)

    def _passthrough(self, node: int, fd: int) -> pyfuse3.FileInfo:
        """A FileInfo for *fd*, with the node's backing id if passthrough is on and allowed."""
        if not self.enable_passthrough:
            return pyfuse3.FileInfo(fh=fd, noflush="noflush" in self.features)
        if node not in self.backing_ids:
            try:
                self.backing_ids[node] = [pyfuse3.passthrough_open(fd), 0]
            except OSError as exc:  # e.g. EPERM without CAP_SYS_ADMIN: serve it ourselves
                self.passthrough_errors.append(errno.errorcode[exc.errno])
                return pyfuse3.FileInfo(fh=fd)
        self.backing_ids[node][1] += 1
        self.fh_nodes[fd] = node
        return pyfuse3.FileInfo(fh=fd, backing_id=self.backing_ids[node][0])

    # -- requests --------------------------------------------------------------------------

    async def getattr(self, inode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        if inode in self.tmp_fds and inode not in self.paths:
            self._count("getattr", inode)
            return self._attrs(os.fstat(self.tmp_fds[inode]), inode)
        return await super().getattr(inode, ctx)

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        if inode in self.tmp_fds and inode not in self.paths:
            self._count("getxattr:" + name.decode(errors="replace"), inode)
            try:
                return os.getxattr(self.tmp_fds[inode], name)
            except OSError as exc:
                raise pyfuse3.FUSEError(exc.errno) from None
        return await super().getxattr(inode, name, ctx)

    async def setattr(
        self, inode: int, attr: Any, fields: Any, fh: int | None, ctx: Any
    ) -> pyfuse3.EntryAttributes:
        entry = await super().setattr(inode, attr, fields, fh, ctx)
        if self.enable_killpriv_v2 and (fields.update_size or fields.update_uid):
            fd = os.open(self._real(inode), os.O_RDONLY)
            try:
                self._kill("setattr", fd, fields.kill_suidgid, remove_caps=True)
            finally:
                os.close(fd)
            entry = self._entry(self.paths[inode])
        return entry

    async def open(
        self, inode: int, flags: int, ctx: Any, kill_suidgid: bool = False
    ) -> pyfuse3.FileInfo:
        if "no_open" in self.features:
            return await super().open(inode, flags, ctx)
        self._count("open", inode)
        fd = os.open(self._real(inode), (flags & ~os.O_ACCMODE) | os.O_RDWR)
        if self.enable_killpriv_v2:
            self._kill("open", fd, kill_suidgid, remove_caps=bool(flags & os.O_TRUNC))
        return self._passthrough(inode, fd)

    async def create(
        self,
        parent_inode: int,
        name: bytes,
        mode: int,
        flags: int,
        ctx: Any,
        kill_suidgid: bool = False,
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        info, entry = await super().create(parent_inode, name, mode, flags, ctx)
        if self.enable_killpriv_v2:
            self._kill("create", info.fh, kill_suidgid, remove_caps=bool(flags & os.O_TRUNC))
        return self._passthrough(entry.node_id, info.fh), entry

    async def write(self, fh: int, off: int, buf: bytes, kill_suidgid: bool = False) -> int:
        if self.enable_killpriv_v2:
            self._kill("write", self._fd(fh), kill_suidgid, remove_caps=True)
        try:
            return await super().write(fh, off, buf)
        except OSError as exc:  # ENOSPC on a full backing file system
            raise pyfuse3.FUSEError(exc.errno) from None

    async def release(self, fh: int) -> None:
        await super().release(fh)
        node = self.fh_nodes.pop(fh, None)
        if node is not None:
            self.backing_ids[node][1] -= 1
            if self.backing_ids[node][1] == 0:
                pyfuse3.passthrough_close(self.backing_ids.pop(node)[0])

    async def tmpfile(
        self, parent_inode: int, mode: int, flags: int, ctx: Any
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._count("tmpfile", parent_inode)
        if "tmpfile" not in self.features:
            raise pyfuse3.FUSEError(errno.ENOSYS)  # the kernel stops asking: EOPNOTSUPP
        fd = os.open(self._real(parent_inode), os.O_TMPFILE | os.O_RDWR, stat.S_IMODE(mode))
        node = self.next_node
        self.next_node += 1
        self.tmp_fds[node] = os.dup(fd)
        return self._passthrough(node, fd), self._attrs(os.fstat(fd), node)

    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any
    ) -> pyfuse3.EntryAttributes:
        self._count("link", inode)
        rel = self._child(new_parent_inode, new_name)
        target = os.path.join(self.backing, rel)
        if inode in self.tmp_fds and inode not in self.paths:
            link_fd(self.tmp_fds[inode], target)  # an unnamed file gets its first name
            self.paths[inode] = rel
            self.nodes[rel] = inode
        else:
            os.link(self._real(inode), target)
        return self._entry(rel)

    async def forget(self, inode_list: Any) -> None:
        await super().forget(inode_list)
        for inode, _ in inode_list:
            if inode in self.tmp_fds:
                os.close(self.tmp_fds.pop(inode))


if __name__ == "__main__":
    main(ToyFs317)
