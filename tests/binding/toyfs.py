"""A tiny pyfuse3 passthrough file system that counts the requests it gets (binding tests).

Run as ``python toyfs.py BACKING MOUNTPOINT [--feature ...]`` in a child process: it mirrors
BACKING, turns on the binding features named on the command line, and answers the
``user.toyfs.stats`` xattr of its root with a JSON record of what it saw (request counts,
the inodes handlers received, the last mode/umask of mkdir/create). Setting
``user.toyfs.invalidate`` on the root to a name invalidates that entry's inode.
It is test scaffolding: the tests/binding suite is its only user.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import json
import os
import stat
import sys
from collections import Counter
from typing import Any

import pyfuse3
import trio

STATS = b"user.toyfs.stats"
INVALIDATE = b"user.toyfs.invalidate"
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IOC_FSGETXATTR = 0x801C581F  # struct fsxattr, 28 bytes
FS_IOC_FSSETXATTR = 0x401C5820
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class ToyFs(pyfuse3.Operations):
    def __init__(self, backing: bytes, features: set[str]) -> None:
        super().__init__()
        self.backing = backing
        self.features = features
        self.split_node_id = "node_id" in features
        self.enable_writeback_cache = "writeback" in features
        self.enable_cache_symlinks = "cache_symlinks" in features
        self.enable_dont_mask = "dont_mask" in features
        self.enable_explicit_inval_data = "explicit_inval_data" in features
        self.no_export_support = "no_export" in features
        self.enable_parallel_dirops = "parallel_dirops" in features
        self.counts: Counter[str] = Counter()
        self.seen_inodes: set[int] = set()  # what handlers got as inode
        self.seen_fhs: set[int] = set()  # ... and as file handle
        self.last_mode: dict[str, list[int]] = {}
        self.paths: dict[int, bytes] = {pyfuse3.ROOT_INODE: b""}
        self.nodes: dict[bytes, int] = {b"": pyfuse3.ROOT_INODE}
        self.next_node = 1000  # far from any inode number of the backing ext4
        self.fds: dict[int, int] = {}  # no-open mode: node -> fd
        self.getattr_tasks: list[str] = []  # the worker task that served each getattr
        self.gate = trio.Event()
        self.waiting = 0  # lookups waiting at the gate

    # -- helpers ---------------------------------------------------------------------------

    def _count(self, name: str, inode: int | None = None) -> None:
        self.counts[name] += 1
        if inode is not None:
            self.seen_inodes.add(inode)

    def _count_fh(self, name: str, fh: int) -> None:
        self.counts[name] += 1
        self.seen_fhs.add(fh)

    def _real(self, node: int) -> bytes:
        rel = self.paths[node]
        return os.path.join(self.backing, rel) if rel else self.backing

    def _node(self, rel: bytes) -> int:
        if rel not in self.nodes:
            self.nodes[rel] = self.next_node
            self.paths[self.next_node] = rel
            self.next_node += 1
        return self.nodes[rel]

    def _entry(self, rel: bytes) -> pyfuse3.EntryAttributes:
        real = os.path.join(self.backing, rel) if rel else self.backing
        return self._attrs(os.lstat(real), self._node(rel))

    def _attrs(self, st: os.stat_result, node: int) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        if self.split_node_id:
            e.st_ino = st.st_ino
            e.node_id = node
        else:
            e.st_ino = node
        for name in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size"):
            setattr(e, name, getattr(st, name))
        e.st_blocks = st.st_blocks
        e.st_atime_ns, e.st_mtime_ns, e.st_ctime_ns = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
        return e

    def _child(self, parent: int, name: bytes) -> bytes:
        prel = self.paths[parent]
        return os.path.join(prel, name) if prel else name

    def _fd(self, fh: int) -> int:
        """The fd of a file handle; in no-open mode *fh* is the node id."""
        if "no_open" in self.features and fh in self.paths:
            if fh not in self.fds:
                self.fds[fh] = os.open(self._real(fh), os.O_RDWR)
            return self.fds[fh]
        return fh

    async def _gate(self, name: bytes) -> None:
        """Feature "gate": a lookup of ``wait-*`` waits until one of ``open`` opens the gate
        (a handler that blocks, as a slow copy-up or a lazy read would)."""
        if name.startswith(b"wait-"):
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        elif name == b"open":
            self.gate.set()

    def _stats(self) -> dict[str, Any]:
        """What ``user.toyfs.stats`` reports."""
        return {
            "counts": self.counts,
            "seen_inodes": sorted(self.seen_inodes),
            "seen_fhs": sorted(self.seen_fhs),
            "nodes": {k.decode(): v for k, v in self.nodes.items()},
            "last_mode": self.last_mode,
            "getattr_tasks": self.getattr_tasks[-100:],
            "waiting": self.waiting,
        }

    # -- requests --------------------------------------------------------------------------

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        self._count("lookup", parent_inode)
        if "gate" in self.features:
            await self._gate(name)
        try:
            return self._entry(self._child(parent_inode, name))
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None

    async def forget(self, inode_list: Any) -> None:
        for inode, _ in inode_list:
            self.seen_inodes.add(inode)

    async def getattr(self, inode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        self._count("getattr", inode)
        self.getattr_tasks.append(trio.lowlevel.current_task().name)
        if ctx.fh is not None:
            self._count_fh("getattr_fh", ctx.fh)
            if "refuse_cached_writes" in self.features:  # as a full disk would
                raise pyfuse3.FUSEError(errno.ENOSPC)
        return self._entry(self.paths[inode])

    async def setattr(
        self, inode: int, attr: Any, fields: Any, fh: int | None, ctx: Any
    ) -> pyfuse3.EntryAttributes:
        self._count("setattr", inode)
        real = self._real(inode)
        if fields.update_size:
            os.truncate(real, attr.st_size)
        if fields.update_mode:
            os.chmod(real, stat.S_IMODE(attr.st_mode))
        if fields.update_mtime or fields.update_atime:
            st = os.lstat(real)
            os.utime(
                real,
                ns=(
                    attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                    attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns,
                ),
            )
        return self._entry(self.paths[inode])

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        self._count("readlink", inode)
        return os.readlink(self._real(inode))

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> Any:
        self._count("mkdir", parent_inode)
        self.last_mode["mkdir"] = [mode, ctx.umask]
        rel = self._child(parent_inode, name)
        os.mkdir(os.path.join(self.backing, rel), stat.S_IMODE(mode) & ~ctx.umask)
        return self._entry(rel)

    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: Any
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._count("create", parent_inode)
        self.last_mode["create"] = [mode, ctx.umask]
        rel = self._child(parent_inode, name)
        real = os.path.join(self.backing, rel)
        fd = os.open(real, (flags & ~os.O_ACCMODE) | os.O_RDWR | os.O_CREAT, stat.S_IMODE(mode))
        return pyfuse3.FileInfo(fh=fd), self._entry(rel)

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self._count("unlink", parent_inode)
        os.unlink(os.path.join(self.backing, self._child(parent_inode, name)))

    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: Any) -> Any:
        self._count("symlink", parent_inode)
        rel = self._child(parent_inode, name)
        os.symlink(target, os.path.join(self.backing, rel))
        return self._entry(rel)

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        self._count("open", inode)
        if "no_open" in self.features:
            raise pyfuse3.FUSEError(errno.ENOSYS)
        fd = os.open(self._real(inode), (flags & ~os.O_ACCMODE) | os.O_RDWR)
        return pyfuse3.FileInfo(fh=fd, noflush="noflush" in self.features)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        self._count_fh("read", fh)
        return os.pread(self._fd(fh), size, off)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        self._count_fh("write", fh)
        return os.pwrite(self._fd(fh), buf, off)

    async def flush(self, fh: int) -> None:
        self._count_fh("flush", fh)

    async def release(self, fh: int) -> None:
        self._count_fh("release", fh)
        os.close(fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        self._count_fh("fsync", fh)
        os.fsync(self._fd(fh))

    async def fallocate(self, fh: int, mode: int, offset: int, length: int) -> None:
        self._count_fh("fallocate", fh)
        if _libc.fallocate(self._fd(fh), mode, offset, length) != 0:
            raise pyfuse3.FUSEError(ctypes.get_errno())

    async def lseek(self, fh: int, offset: int, whence: int) -> int:
        self._count_fh("lseek", fh)
        try:
            return os.lseek(self._fd(fh), offset, whence)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None

    async def copy_file_range(
        self, fh_in: int, off_in: int, fh_out: int, off_out: int, length: int, flags: int
    ) -> int:
        self._count_fh("copy_file_range", fh_in)
        return os.copy_file_range(self._fd(fh_in), self._fd(fh_out), length, off_in, off_out)

    async def ioctl(
        self,
        inode: int,
        fh: int,
        cmd: int,
        arg: int,
        in_buf: bytes,
        out_size: int,
        flags: int,
        ctx: Any,
    ) -> bytes:
        self._count("ioctl", inode)
        # The kernel's fileattr code sends FS_IOC_[GS]ETFLAGS with an unsigned int (4 bytes),
        # and reads the old attributes with FS_IOC_FSGETXATTR before any change (chattr).
        sizes = {
            FS_IOC_GETFLAGS: 4,
            FS_IOC_SETFLAGS: 4,
            FS_IOC_FSGETXATTR: 28,
            FS_IOC_FSSETXATTR: 28,
        }
        if sizes.get(cmd) not in (out_size, len(in_buf)):
            raise pyfuse3.FUSEError(errno.ENOTTY)
        fd = os.open(self._real(inode), os.O_RDONLY | os.O_NONBLOCK)
        try:
            if cmd in (FS_IOC_GETFLAGS, FS_IOC_FSGETXATTR):
                buf = bytearray(out_size)
                fcntl.ioctl(fd, cmd, buf)
                return bytes(buf)
            fcntl.ioctl(fd, cmd, bytearray(in_buf))
            return b""
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None
        finally:
            os.close(fd)

    async def opendir(self, inode: int, ctx: Any) -> Any:
        self._count("opendir", inode)
        if "no_opendir" in self.features:
            raise pyfuse3.FUSEError(errno.ENOSYS)
        if "cache_readdir" in self.features:
            return pyfuse3.FileInfo(fh=inode, cache_readdir=True, keep_cache=True)
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        self._count_fh("readdir", fh)
        names = sorted(os.listdir(self._real(fh)))
        for i, name in enumerate(names[start_id:], start_id):
            rel = self._child(fh, name)
            if not pyfuse3.readdir_reply(token, name, self._entry(rel), i + 1):
                break

    async def releasedir(self, fh: int) -> None:
        self._count_fh("releasedir", fh)

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        return pyfuse3.StatvfsData()

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        if inode == pyfuse3.ROOT_INODE and name == STATS:
            return json.dumps(self._stats()).encode()
        self._count("getxattr:" + name.decode(errors="replace"), inode)
        try:
            return os.getxattr(self._real(inode), name, follow_symlinks=False)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        if inode == pyfuse3.ROOT_INODE and name == INVALIDATE:
            node = self.nodes[value]
            try:
                await trio.to_thread.run_sync(pyfuse3.invalidate_inode, node)
            except FileNotFoundError:  # the kernel dropped the inode (and what it cached)
                pass
            return
        self._count("setxattr", inode)
        os.setxattr(self._real(inode), name, value, follow_symlinks=False)

    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        self._count("listxattr", inode)
        return [os.fsencode(n) for n in os.listxattr(self._real(inode), follow_symlinks=False)]


def main(cls: type[ToyFs] = ToyFs) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--feature", action="append", default=[])
    args = parser.parse_args()
    fs = cls(os.fsencode(args.backing), set(args.feature))
    options = set(pyfuse3.default_options) | {"fsname=toyfs"}
    pyfuse3.init(fs, args.mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)
    print("toyfs: exit", file=sys.stderr)


if __name__ == "__main__":
    main()
