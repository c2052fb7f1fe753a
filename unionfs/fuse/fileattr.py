"""The FUSE ioctl handler: inode flags (``lsattr``/``chattr``) on the file behind an entry.

The kernel's file attribute code sends FS_IOC_GETFLAGS/SETFLAGS (4 bytes) and
FS_IOC_FSGETXATTR/FSSETXATTR (a 28-byte ``struct fsxattr``) itself, on a file it opens for
that alone. Reading asks the file that holds the entry's metadata (the upper copy, else the
lower one), as kernel overlayfs does; a change copies the entry up first (its metadata only
where ``metacopy=on`` allows, as the kernel's ``ovl_fileattr_set``) and then sets the flags
on the upper file itself, as fuse-overlayfs does. Every other command is ENOTTY.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

import pyfuse3

from unionfs.fuse.edge import handler
from unionfs.fuse.inodes import Node
from unionfs.fuse.state import MountState

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FSXATTR_SIZE = 28
FLAGS_SIZE = 4  # the kernel passes an unsigned int, although the command says long

GETTERS = {FS_IOC_GETFLAGS: FLAGS_SIZE, FS_IOC_FSGETXATTR: FSXATTR_SIZE}
SETTERS = {FS_IOC_SETFLAGS: FLAGS_SIZE, FS_IOC_FSSETXATTR: FSXATTR_SIZE}
# Open the file only to ask it: never as a controlling terminal, never waiting on a fifo.
ASKING = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY


def _enotty() -> OSError:
    return OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))


def ask(fd: int, cmd: int, size: int, value: bytes = b"") -> bytes:
    """ioctl *cmd* on *fd* with a buffer of *size* bytes (*value*, zero padded)."""
    buf = bytearray(value[:size].ljust(max(size, 8), b"\0"))
    fcntl.ioctl(fd, cmd, buf, True)
    return bytes(buf[:size])


class FileAttrHandlers(MountState):
    """ioctl: FS_IOC_GETFLAGS/SETFLAGS and FS_IOC_FSGETXATTR/FSSETXATTR."""

    @handler
    async def ioctl(
        self,
        inode: int,
        fh: int,
        cmd: int,
        arg: int,
        in_buf: bytes,
        out_size: int,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> bytes:
        if cmd in GETTERS:
            node = self._flagged(inode)
            fd = self._open_to_ask(node, upper=False)
            try:
                return ask(fd, cmd, GETTERS[cmd])[:out_size]
            finally:
                os.close(fd)
        if cmd in SETTERS:
            await self._set(inode, cmd, in_buf)
            return b""
        raise _enotty()

    def _flagged(self, inode: int) -> Node:
        """The node of *inode*, which must be a regular file or a directory (the kernel
        sends these commands for nothing else)."""
        node = self.inodes.get(inode)
        mode = node.res.st.st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _enotty()
        return node

    def _open_to_ask(self, node: Node, upper: bool) -> int:
        """A descriptor of the file whose flags *node* shows (the caller closes it)."""
        if node.unlinked:
            # No name left: only a descriptor that is open already reaches it.
            fd = self.handles.fd_of(node.ino, upper=upper)
            if fd is None:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
            return os.dup(fd)
        layer, path = self.stack.meta_of(node.res)
        return layer.open(path, ASKING)

    async def _set(self, inode: int, cmd: int, value: bytes) -> None:
        self._upper_check()
        async with self.changing():
            node = self._flagged(inode)
            if not node.unlinked:
                await self._copied_up(node, data=True, meta=True)
            fd = self._open_to_ask(node, upper=True)
            try:
                ask(fd, cmd, SETTERS[cmd], value)
            finally:
                os.close(fd)
            if not node.unlinked:
                self._changed(node, self._fresh(node.res))
            self.stale.add(node.ino)  # its ctime changed; the ioctl's reply carries none
        await self._tell_kernel()
