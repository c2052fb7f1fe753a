"""Copy-up (the kernel's copy_up.c): make a lower entry exist in the upper layer.

Parents first. Each copy is built in the work directory under a temporary name, with its
data, owner, mode, xattrs and times, and then renamed into place, so a crash leaves either
no copy or a whole one. A second copy-up of the same entry finds the work done (the rename
refuses to replace, and the caller re-resolves). The upper parent's timestamps are put
back afterwards, as the kernel does: a copy-up is not a change of the directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from unionfs import layerfmt
from unionfs.safepath import RENAME_NOREPLACE, LayerDir, split
from unionfs.union import links
from unionfs.union.lookup import is_metacopy, private_xattr, resolve_path
from unionfs.union.stack import Layer, Resolved, Stack, StatLike, normal_paths


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


def copy_up(stack: Stack, res: Resolved, data: bool = True, meta: bool = False) -> Resolved:
    """*res* as it resolves once it exists in the upper layer (copied up if needed).

    With ``data=False`` a regular file is copied up empty (the caller truncates it anyway).
    With ``meta=True`` and the metacopy feature on, a regular file is copied up without its
    data (the kernel's metacopy copy-up): an upper file of the same size with no blocks,
    marked ``overlay.metacopy``; its data is read from below until ``copy_up_data``.
    """
    upper = upper_of(stack)
    if res.top == 0:
        return res
    parent_path, _ = split(res.path)
    if res.path:
        ensure_upper_dir(stack, parent_path)
    metacopy = meta and data and stack.features.metacopy and stat.S_ISREG(res.st.st_mode)
    metacopy = metacopy and not links.indexed(stack, res.st)
    existing = upper.lstat(res.path)
    if existing is None or layerfmt.is_whiteout_device(existing.st_mode, existing.st_rdev):
        _copy_one(stack, res, data, metacopy)
        existing = upper.lstat(res.path)
        assert existing is not None
    if res.is_dir:
        return res.under_upper(existing)
    if metacopy and is_metacopy(stack, 0, res.path):
        paths = normal_paths(res.path, (res.path, res.data_path))
        return Resolved(res.path, (0, res.data), existing, paths)
    return Resolved(res.path, (0,), existing)


def copy_up_data(stack: Stack, res: Resolved, data: bool = True) -> Resolved:
    """Metacopy file *res* (upper) gets its data (the kernel's ovl_copy_up_meta_inode_data);
    with ``data=False`` it is emptied instead (the caller truncates it to 0 anyway).

    The data goes into the upper file in place, then the mark goes: until then the data
    is read from below, so a crash in between loses nothing.
    """
    if not (res.top == 0 and res.metacopy):
        return res
    upper = upper_of(stack)
    out = upper.open(res.path, os.O_WRONLY)
    try:
        if data:
            src = stack.layers[res.data].open(res.data_path, os.O_RDONLY)
            try:
                copy_data(src, out, os.fstat(out).st_size)
            finally:
                os.close(src)
        else:
            os.ftruncate(out, 0)
        os.fsync(out)
    finally:
        os.close(out)
    times = upper.lstat(res.path)
    assert times is not None
    upper.removexattr(res.path, stack.metacopy_xattr)
    upper.utime(res.path, (times.st_atime_ns, times.st_mtime_ns))  # data, not a change
    st = upper.lstat(res.path)
    assert st is not None
    return Resolved(res.path, (0,), st)


def ensure_upper_dir(stack: Stack, path: bytes) -> None:
    """Make merged directory *path* and all its parents exist in the upper layer."""
    upper = upper_of(stack)
    if upper.lstat(path) is not None:
        return
    res = resolve_path(stack, path)
    if res is None or not res.is_dir:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), os.fsdecode(path))
    copy_up(stack, res)


def _copy_one(stack: Stack, res: Resolved, data: bool, metacopy: bool) -> None:
    upper = upper_of(stack)
    work = stack.work
    assert work is not None
    src = stack.layers[res.top]
    st = res.st
    if links.indexed(stack, st):
        # One copy for every name of the lower file, kept in the index, linked here.
        def build(temp: bytes) -> None:
            assert work is not None
            if res.metacopy:  # a lower metacopy file: the data from the layer below it
                build_entry(stack.layers[res.data], res.data_path, st, work, temp, data)
            else:
                build_entry(src, res.top_path, st, work, temp, data)
            copy_metadata(src, res.top_path, st, work, temp, stack.private)
            _keep_number(stack, res, work, temp)

        links.link_up(stack, links.copy_into_index(stack, res, build), res.path)
        return
    temp = stack.temp_name()
    try:
        if metacopy:
            out = work.create(temp, os.O_WRONLY, 0o600)
            try:
                os.ftruncate(out, st.st_size)  # a hole the size of the data: no blocks
            finally:
                os.close(out)
        else:
            if res.metacopy:  # a lower metacopy file: the data from the layer below it
                build_entry(stack.layers[res.data], res.data_path, st, work, temp, data)
            else:
                build_entry(src, res.top_path, st, work, temp, data)
        copy_metadata(src, res.top_path, st, work, temp, stack.private)
        _keep_number(stack, res, work, temp)
        if metacopy:
            # An empty value: the kernel's form without an fs-verity digest.
            work.setxattr(temp, stack.metacopy_xattr, b"")
        parent_path, _ = split(res.path)
        parent_times = upper.lstat(parent_path)
        work.rename_to(temp, upper, res.path, RENAME_NOREPLACE)
        if parent_times is not None:
            upper.utime(parent_path, (parent_times.st_atime_ns, parent_times.st_mtime_ns))
    except FileExistsError:
        work.remove_tree(temp)  # raced with another copy-up: theirs stands
    except BaseException:
        work.remove_tree(temp)
        raise


def _keep_number(stack: Stack, res: Resolved, work: LayerDir, temp: bytes) -> None:
    """Record on the copy of lower *res* the inode number it showed, which it keeps
    showing, in this mount and the next (the kernel's origin). Also for one name of a
    lower hard link: the inode table never gives one number to two entries, so its other
    names, separate inodes once copy-up has broken the link, show numbers of their own.
    Where no xattr goes (a symlink, as a user), the copy shows its own number from the next
    mount on."""
    number = shown_ino(stack, res)
    if number is not None:
        with contextlib.suppress(OSError):
            work.setxattr(temp, stack.ino_xattr, b"%d" % number)


def shown_ino(stack: Stack, res: Resolved) -> int | None:
    """The inode number the overlay shows for *res*: the one a copied-up entry recorded
    (``_keep_number``; also in a lower layer that was an upper), else its own
    (``Stack.own_ino``); None when neither fits."""
    value = private_xattr(stack, res.top, res.top_path, stack.ino_xattr, res.is_dir)
    if value is not None and value.isdigit() and 1 < int(value) < 1 << 63:
        return int(value)
    return stack.own_ino(res.st)


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
    """xattrs (but the overlay's own, named by *private*), owner, mode, then times: chown
    clears set-id bits, and anything done after the times would change them."""
    for name in src.listxattr(path):
        if layerfmt.is_private_xattr(name, private):
            continue
        value = src.getxattr(path, name)
        if value is not None:
            work.setxattr(temp, name, value)
    chown_if_allowed(work, temp, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        work.chmod(temp, stat.S_IMODE(st.st_mode))
    work.utime(temp, (st.st_atime_ns, st.st_mtime_ns))
