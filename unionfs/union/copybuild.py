"""How one copy is built in the work directory (the kernel's ovl_copy_up_inode): the entry
of the right type with its data, link target or device, then its xattrs (never the
overlay's own), owner, mode and times. Builds only; moving it into place is ``copyup``'s.
"""

from __future__ import annotations

import errno
import os
import stat

from unionfs import layerfmt
from unionfs.safepath import LayerDir
from unionfs.union.stack import Layer, StatLike


def chown_if_allowed(layer: LayerDir, path: bytes, uid: int, gid: int) -> None:
    """Give *path* the owner *uid*:*gid* where this daemon may: an unprivileged daemon (a
    user's mount, or root in a user namespace for an id it does not map) keeps its own
    ids on copies and new entries instead of failing, as fuse-overlayfs does."""
    try:
        layer.chown(path, uid, gid)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EINVAL):
            raise


def build_entry(src: Layer, path: bytes, st: StatLike, work: LayerDir, temp: bytes,
                data: bool) -> None:  # fmt: skip
    """A new entry *temp* in *work* of *st*'s type: a directory, a file holding *src*'s
    data of *path* (when *data*), a symlink to *path*'s target, or a node; no metadata."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        work.mkdir(temp, 0o700)
    elif stat.S_ISREG(mode):
        out = work.create(temp, os.O_WRONLY, 0o600)
        try:
            if data:
                fd = src.open(path, os.O_RDONLY)
                try:
                    copy_data(fd, out, st.st_size)
                finally:
                    os.close(fd)
        finally:
            os.close(out)
    elif stat.S_ISLNK(mode):
        work.symlink(src.readlink(path), temp)
    else:
        work.mknod(temp, stat.S_IFMT(mode) | 0o600, st.st_rdev)


def copy_data(src: int, dst: int, size: int) -> None:
    """Copy *size* bytes, keeping holes (SEEK_DATA/SEEK_HOLE) and letting the kernel
    reflink or splice (copy_file_range); read/write where copy_file_range cannot."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break  # only a hole is left
            start = offset
        end = size
        try:
            end = min(os.lseek(src, start, os.SEEK_HOLE), size)
        except OSError:
            pass
        _copy_range(src, dst, start, end)
        offset = end
    os.ftruncate(dst, size)


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    position = start
    while position < end:
        try:
            done = os.copy_file_range(src, dst, end - position, position, position)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            done = _copy_plain(src, dst, position, end)
        if done == 0:
            break  # the source is shorter than it said
        position += done


def _copy_plain(src: int, dst: int, start: int, end: int) -> int:
    block = os.pread(src, min(1 << 20, end - start), start)
    if block:
        os.pwrite(dst, block, start)
    return len(block)


def copy_metadata(
    src: Layer, path: bytes, st: StatLike, work: LayerDir, temp: bytes,
    private: layerfmt.Prefixes = layerfmt.PRIVATE_XATTR_PREFIXES,
) -> None:  # fmt: skip
    """Owner, xattrs (but the overlay's own, named by *private*), mode, then times, in this
    order: a chown clears set-id bits and the file capability (``security.capability``),
    so it comes before both are copied, and anything done after the times would change
    them."""
    chown_if_allowed(work, temp, st.st_uid, st.st_gid)
    for name in src.listxattr(path):
        if layerfmt.is_private_xattr(name, private):
            continue
        value = src.getxattr(path, name)
        if value is not None:
            work.setxattr(temp, name, value)
    if not stat.S_ISLNK(st.st_mode):
        work.chmod(temp, stat.S_IMODE(st.st_mode))
    work.utime(temp, (st.st_atime_ns, st.st_mtime_ns))
