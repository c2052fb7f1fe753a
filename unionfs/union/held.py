"""A file the overlay still serves after its last name went (unlinked, or renamed over,
while the kernel holds it): reached through an ``O_PATH`` descriptor taken while it had a
name, never through a path, as the kernel's overlay inode keeps a reference to its upper
inode. Holding it also keeps its inode number from going to a new file. Decides nothing
about when a file is held: the FUSE inode table does.
"""

from __future__ import annotations

import errno
import os

from unionfs.safepath import LayerDir, proc_fd_path


class Held:
    """One file kept by descriptor. Invariant: ``fd`` is an ``O_PATH`` descriptor of the
    file (of any type) until ``close``; every call acts on that inode, whatever its names
    are now. The /proc magic link of the descriptor ends at the inode itself (a symlink's
    own, never its target), and the path-taking calls check ownership as on any path."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def take(cls, layer: LayerDir, path: bytes) -> Held:
        """Hold the file *path* of *layer* names now."""
        return cls(layer.opath(path))

    @property
    def _where(self) -> str:
        return proc_fd_path(self.fd)

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def reopen(self, flags: int) -> int:
        """A new descriptor of the file, open with *flags* (no O_CREAT: it exists)."""
        return os.open(self._where, flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW))

    def readlink(self) -> bytes:
        return os.fsencode(os.readlink("", dir_fd=self.fd))

    def chmod(self, mode: int) -> None:
        os.chmod(self._where, mode)

    def chown(self, uid: int, gid: int) -> None:
        os.chown(self._where, uid, gid)

    def truncate(self, size: int) -> None:
        os.truncate(self._where, size)

    def utime(self, ns: tuple[int, int]) -> None:
        os.utime(self._where, ns=ns)

    def getxattr(self, name: bytes) -> bytes | None:
        try:
            return os.getxattr(self._where, name)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTSUP):
                return None
            raise

    def listxattr(self) -> list[bytes]:
        return [os.fsencode(n) for n in os.listxattr(self._where)]

    def setxattr(self, name: bytes, value: bytes) -> None:
        os.setxattr(self._where, name, value)

    def removexattr(self, name: bytes) -> None:
        os.removexattr(self._where, name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
