"""The FUSE handler of open(2) with O_TMPFILE (FUSE_TMPFILE, Linux 6.7+ with the patched
binding, ``features``): a file with no name, made in the upper copy of its directory.

Its node is unlinked from the start and kept by its file (``held``), as a file whose last
name went; a link of it (the only request that can name it: the kernel lets link(2) name
an unnamed file only if it was made without O_EXCL) gives it a name (``names``).
"""

from __future__ import annotations

import os

import pyfuse3

from unionfs.fuse.edge import handler
from unionfs.fuse.handles import FileHandle, backing_flags
from unionfs.fuse.state import MountState
from unionfs.safepath import join, proc_fd_path
from unionfs.union import tmpfile
from unionfs.union.held import Held
from unionfs.union.stack import Resolved

# The path an unnamed file's node resolves by until it gets a name: no name can hold "\0",
# so no lookup, listing or change of a real entry ever meets it.
NAMELESS = b"\0tmpfile"


class TmpfileHandlers(MountState):
    """tmpfile."""

    @handler
    async def tmpfile(
        self, parent_inode: int, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._upper_check()
        async with self.changing():
            parent = self._dir(parent_inode)
            backing = backing_flags(flags)
            umask = self._umask(ctx)
            where, fd = tmpfile.make(self.stack, parent.res, mode, backing, self._owner(ctx), umask)
            try:
                held = Held(os.open(proc_fd_path(fd), os.O_PATH | os.O_CLOEXEC))
            except BaseException:
                os.close(fd)
                raise
            self._follow_copies()
            res = Resolved(join(where.path, NAMELESS), (0,), os.fstat(fd))
            node = self.inodes.remember(res, parent_inode, made=True)
            self.inodes.lost_name(node, res.path, held)
            attrs_ = self._held_attrs(node)
        fh = self.handles.open_file(FileHandle(fd, node.ino, True, True, flags=backing))
        return self._file_info(fh, node.ino, writes=True, flags=flags), attrs_
