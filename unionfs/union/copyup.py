"""Copy-up (the kernel's copy_up.c): make a lower entry exist in the upper layer.

Parents first. Each copy is built in the work directory under a temporary name, with its
data, owner, mode, xattrs and times, and then renamed into place, so a crash leaves either
no copy or a whole one. A second copy-up of the same entry finds the work done (the rename
refuses to replace, and the caller re-resolves). The upper parent's timestamps are put
back afterwards, as the kernel does: a copy-up is not a change of the directory.
"""

from __future__ import annotations

import errno
import os
import stat

from unionfs import layerfmt
from unionfs.safepath import RENAME_NOREPLACE, LayerDir, split
from unionfs.union.lookup import resolve_path
from unionfs.union.stack import Layer, Resolved, Stack, StatLike


def chown_if_allowed(layer: LayerDir, path: bytes, uid: int, gid: int) -> None:
    """Give *path* the owner *uid*:*gid* where this daemon may: an unprivileged daemon (a
    user's mount, or root in a user namespace for an id it does not map) keeps its own
    ids on copies and new entries instead of failing, as fuse-overlayfs does."""
    try:
        layer.chown(path, uid, gid)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EINVAL):
            raise


def upper_of(stack: Stack) -> LayerDir:
    if stack.upper is None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    return stack.upper


def copy_up(stack: Stack, res: Resolved, data: bool = True) -> Resolved:
    """*res* as it resolves once it exists in the upper layer (copied up if needed).

    With ``data=False`` a regular file is copied up empty (the caller truncates it anyway).
    """
    upper = upper_of(stack)
    if res.top == 0:
        return res
    parent_path, _ = split(res.path)
    if res.path:
        ensure_upper_dir(stack, parent_path)
    existing = upper.lstat(res.path)
    if existing is None or layerfmt.is_whiteout_device(existing.st_mode, existing.st_rdev):
        _copy_one(stack, res, data)
        existing = upper.lstat(res.path)
        assert existing is not None
    layers = (0, *res.layers) if res.is_dir else (0,)
    return Resolved(res.path, layers, existing)


def ensure_upper_dir(stack: Stack, path: bytes) -> None:
    """Make merged directory *path* and all its parents exist in the upper layer."""
    upper = upper_of(stack)
    if upper.lstat(path) is not None:
        return
    res = resolve_path(stack, path)
    if res is None or not res.is_dir:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), os.fsdecode(path))
    copy_up(stack, res)


def _copy_one(stack: Stack, res: Resolved, data: bool) -> None:
    upper = upper_of(stack)
    work = stack.work
    assert work is not None
    src = stack.layers[res.top]
    st = res.st
    temp = stack.temp_name()
    try:
        _build(src, res.path, st, work, temp, data)
        copy_metadata(src, res.path, st, work, temp)
        parent_path, _ = split(res.path)
        parent_times = upper.lstat(parent_path)
        work.rename_to(temp, upper, res.path, RENAME_NOREPLACE)
        if parent_times is not None and parent_path:
            upper.utime(parent_path, (parent_times.st_atime_ns, parent_times.st_mtime_ns))
    except FileExistsError:
        work.remove_tree(temp)  # raced with another copy-up: theirs stands
    except BaseException:
        work.remove_tree(temp)
        raise


def _build(src: Layer, path: bytes, st: StatLike, work: LayerDir, temp: bytes,
           data: bool) -> None:  # fmt: skip
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


def copy_metadata(src: Layer, path: bytes, st: StatLike, work: LayerDir,
                  temp: bytes) -> None:  # fmt: skip
    """xattrs (but the overlay's own), owner, mode, then times: chown clears set-id bits,
    and anything done after the times would change them."""
    for name in src.listxattr(path):
        if layerfmt.is_private_xattr(name):
            continue
        value = src.getxattr(path, name)
        if value is not None:
            work.setxattr(temp, name, value)
    chown_if_allowed(work, temp, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        work.chmod(temp, stat.S_IMODE(st.st_mode))
    work.utime(temp, (st.st_atime_ns, st.st_mtime_ns))
