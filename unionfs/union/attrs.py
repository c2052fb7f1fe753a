"""Changing attributes and xattrs (the kernel's inode.c and xattrs.c): copy up, then change.

A name in the overlay's own namespaces (``trusted.overlay.X``, ``user.overlay.X``) set
through the mount is stored escaped (``trusted.overlay.overlay.X``), as the kernel does
since 6.7, so it never passes for a marker. Removing an xattr that is not there fails
without copying anything up. Setting an access ACL may take S_ISGID with it
(``posix_acl_update_mode``); the upper filesystem sets the permission bits from it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from unionfs import layerfmt
from unionfs.union import acl
from unionfs.union.copyup import copy_up, copy_up_data
from unionfs.union.held import Held
from unionfs.union.stack import Resolved, Stack, upper_of


@dataclass(frozen=True, slots=True)
class Changes:
    """What a setattr asks for; None leaves a field alone."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None
    # The change time alone, as chown(path, -1, -1) asks for it (the VFS sends ATTR_CTIME):
    # every other change moves it anyway.
    ctime: bool = False

    @property
    def moves_ctime(self) -> bool:
        """Whether applying the other fields changes the file's ctime by itself."""
        return any(
            v is not None
            for v in (self.mode, self.uid, self.gid, self.size, self.atime_ns, self.mtime_ns)
        )


def flushes_mtime(changes: Changes) -> bool:
    """Whether *changes* is what the write-back cache sends to flush a file's times: the
    mtime (and the ctime), nothing else."""
    return changes == Changes(mtime_ns=changes.mtime_ns, ctime=changes.ctime)


def set_attributes(
    stack: Stack, res: Resolved, changes: Changes, fd: int | None = None, flush: bool = False
) -> Resolved:
    """Apply *changes* to *res* (copied up first); *fd*, if given, is open for writing on it.
    *flush*: the caller knows *changes* to be the write-back cache flushing times that the
    upper has already (after a link, unlink or rename), where they are the same it does
    nothing; any other setattr marks the file changed (ctime), as the kernel's does."""
    truncating_to_zero = changes.size == 0 and stat.S_ISREG(res.st.st_mode)
    res = copy_up(stack, res, data=not truncating_to_zero, meta=changes.size is None)
    if changes.size is not None:
        res = copy_up_data(stack, res, data=not truncating_to_zero)
    upper = upper_of(stack)
    path = res.path
    if changes.uid is not None or changes.gid is not None:
        upper.chown(
            path,
            -1 if changes.uid is None else changes.uid,
            -1 if changes.gid is None else changes.gid,
        )
    if changes.mode is not None and not stat.S_ISLNK(res.st.st_mode):
        upper.chmod(path, stat.S_IMODE(changes.mode))
    if changes.size is not None:
        if not stat.S_ISREG(res.st.st_mode):
            raise OSError(errno.EISDIR if res.is_dir else errno.EINVAL, "not a regular file")
        if fd is not None:
            os.ftruncate(fd, changes.size)
        else:
            own = upper.open(path, os.O_WRONLY)
            try:
                os.ftruncate(own, changes.size)
            finally:
                os.close(own)
    if changes.atime_ns is not None or changes.mtime_ns is not None:
        now = upper.lstat(path)
        if now is None:  # only if the caller's entry is stale: never the kernel's doing
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        times = (
            now.st_atime_ns if changes.atime_ns is None else changes.atime_ns,
            now.st_mtime_ns if changes.mtime_ns is None else changes.mtime_ns,
        )
        if flush and changes.mtime_ns == now.st_mtime_ns and flushes_mtime(changes):
            # The write-back cache flushing the mtime it was given after a link, unlink
            # or rename: already so. One syscall, not three; the ctime the request carries
            # (FATTR_CTIME) moved with the change that caused it. A utimensat setting the
            # same mtime alone looks alike, but is no flush: its ctime moves.
            return res.with_st(now)
        upper.utime(path, times)
    if changes.ctime and not changes.moves_ctime:
        # The kernel's chown(-1, -1) still marks the inode changed (notify_change with
        # ATTR_CTIME); a chown to -1, -1 of the upper does exactly that, and needs no right.
        upper.chown(path, -1, -1)
    st = upper.lstat(path)
    if st is None:
        raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
    return res.with_st(st)


def set_attributes_held(
    held: Held, changes: Changes, fd: int | None = None, flush: bool = False
) -> os.stat_result:
    """Apply *changes* to a file with no name left (``held``); *fd*, if given, is open for
    writing on it; *flush* as for ``set_attributes``. Nothing is copied up: only an upper
    file is ever held."""
    if changes.uid is not None or changes.gid is not None:
        held.chown(
            -1 if changes.uid is None else changes.uid,
            -1 if changes.gid is None else changes.gid,
        )
    if changes.mode is not None and not stat.S_ISLNK(held.stat().st_mode):
        held.chmod(stat.S_IMODE(changes.mode))
    if changes.size is not None:
        if fd is not None:
            os.ftruncate(fd, changes.size)
        else:
            held.truncate(changes.size)
    if changes.atime_ns is not None or changes.mtime_ns is not None:
        now = held.stat()
        if flush and changes.mtime_ns == now.st_mtime_ns and flushes_mtime(changes):
            return now  # as in ``set_attributes``
        held.utime(
            (
                now.st_atime_ns if changes.atime_ns is None else changes.atime_ns,
                now.st_mtime_ns if changes.mtime_ns is None else changes.mtime_ns,
            )
        )
    if changes.ctime and not changes.moves_ctime:
        held.chown(-1, -1)
    return held.stat()


def set_xattr(
    stack: Stack, res: Resolved, name: bytes, value: bytes, keep_sgid: bool = True
) -> Resolved:
    """Set xattr *name*; an access ACL set without *keep_sgid* clears S_ISGID."""
    stored = layerfmt.escape_xattr(name, stack.private)
    res = copy_up(stack, res, meta=True)
    upper = upper_of(stack)
    upper.setxattr(res.path, stored, value)
    if not keep_sgid and drops_sgid(name, value):
        st = upper.lstat(res.path)
        if st is not None and st.st_mode & stat.S_ISGID:
            upper.chmod(res.path, stat.S_IMODE(st.st_mode) & ~stat.S_ISGID)
    return res


def set_xattr_held(held: Held, name: bytes, value: bytes, private: layerfmt.Prefixes,
                   keep_sgid: bool = True) -> None:  # fmt: skip
    """``set_xattr`` for a file with no name left, through the file itself."""
    held.setxattr(layerfmt.escape_xattr(name, private), value)
    if not keep_sgid and drops_sgid(name, value):
        mode = held.stat().st_mode
        if mode & stat.S_ISGID:
            held.chmod(stat.S_IMODE(mode) & ~stat.S_ISGID)


def drops_sgid(name: bytes, value: bytes) -> bool:
    """Setting xattr *name* to *value* is the kind of change that clears S_ISGID of a
    caller outside the file's group: an access ACL (its mode bits change with it; an empty
    value removes the ACL and changes no mode)."""
    return name == acl.ACCESS and bool(value)


def remove_xattr(stack: Stack, res: Resolved, name: bytes) -> Resolved:
    name = layerfmt.escape_xattr(name, stack.private)
    layer, path = stack.meta_of(res)
    if res.top != 0 and layer.getxattr(path, name) is None:
        raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))
    res = copy_up(stack, res, meta=True)
    upper_of(stack).removexattr(res.path, name)
    return res
