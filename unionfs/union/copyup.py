"""Copy-up (the kernel's copy_up.c): make a lower entry exist in the upper layer.

Parents first. Each copy is built in the work directory under a temporary name, with its
data, owner, mode, xattrs and times, and then renamed into place, so a crash leaves either
no copy or a whole one. A second copy-up of the same entry finds the work done (the rename
refuses to replace, and the caller re-resolves). The upper parent's timestamps are put
back afterwards, as the kernel does: a copy-up is not a change of the directory. Every
entry copied up, parents included, is reported to the stack (``Stack.copied``), so
whoever keeps resolved entries can follow without walking the path again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from unionfs import layerfmt
from unionfs.safepath import RENAME_NOREPLACE, LayerDir, split
from unionfs.union import hardlinks
from unionfs.union.copybuild import build_entry, copy_data, copy_metadata
from unionfs.union.lookup import is_metacopy, resolve_path
from unionfs.union.stack import Resolved, Stack, normal_paths, upper_of, xattr_of

CAPABILITY_XATTR = b"security.capability"


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
    metacopy = metacopy and not hardlinks.lower_link(stack, res)
    existing = upper.lstat(res.path)
    if existing is None or layerfmt.is_whiteout_device(existing.st_mode, existing.st_rdev):
        _copy_one(stack, res, data, metacopy)
        existing = upper.lstat(res.path)
        assert existing is not None
    if res.is_dir:
        copied = res.under_upper(existing)
    elif metacopy and is_metacopy(stack, 0, res.path):
        paths = normal_paths(res.path, (res.path, res.data_path))
        copied = Resolved(res.path, (0, res.data), existing, paths)
    else:
        copied = Resolved(res.path, (0,), existing)
    stack.copied(res, copied)
    return copied


def copy_up_data(stack: Stack, res: Resolved, data: bool = True) -> Resolved:
    """Metacopy file *res* (upper) gets its data (the kernel's ovl_copy_up_meta_inode_data);
    with ``data=False`` it is emptied instead (the caller truncates it to 0 anyway).

    The data goes into the upper file in place, then the mark goes: until then the data
    is read from below, so a crash in between loses nothing.
    """
    if not (res.top == 0 and res.metacopy):
        return res
    upper = upper_of(stack)
    kept = _privileges(upper, res.path)
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
    _restore_privileges(upper, res.path, kept, times.st_mode)
    upper.removexattr(res.path, stack.metacopy_xattr)
    upper.utime(res.path, (times.st_atime_ns, times.st_mtime_ns))  # data, not a change
    st = upper.lstat(res.path)
    assert st is not None
    whole = Resolved(res.path, (0,), st)
    stack.copied(res, whole)
    return whole


def copy_up_to_move(stack: Stack, res: Resolved) -> Resolved:
    """*res* in the upper, ready to move or to get another name: with ``metacopy=on`` a
    regular file comes up (or stays) metadata-only, as the kernel's (its redirect then
    says where its data is); otherwise with its data."""
    meta = stack.features.metacopy and stat.S_ISREG(res.st.st_mode)
    res = copy_up(stack, res, meta=meta)
    return res if meta else copy_up_data(stack, res)


def ensure_upper_dir(stack: Stack, path: bytes) -> None:
    """Make merged directory *path* and all its parents exist in the upper layer."""
    upper = upper_of(stack)
    if upper.lstat(path) is not None:
        return
    res = resolve_path(stack, path)
    if res is None or not res.is_dir:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), os.fsdecode(path))
    copy_up(stack, res)


def _privileges(upper: LayerDir, path: bytes) -> tuple[bytes | None, int]:
    """The file capability and mode of *path*, which writing its data clears (the kernel
    drops ``security.capability`` on any write, set-id bits on a write without
    CAP_FSETID); a copy-up is not a user's write, so they are put back after it."""
    st = upper.lstat(path)
    assert st is not None
    return upper.getxattr(path, CAPABILITY_XATTR), stat.S_IMODE(st.st_mode)


def _restore_privileges(upper: LayerDir, path: bytes, kept: tuple[bytes | None, int],
                        mode: int) -> None:  # fmt: skip
    capability, kept_mode = kept
    if stat.S_IMODE(mode) != kept_mode:
        upper.chmod(path, kept_mode)
    if capability is not None and upper.getxattr(path, CAPABILITY_XATTR) != capability:
        upper.setxattr(path, CAPABILITY_XATTR, capability)


def _copy_one(stack: Stack, res: Resolved, data: bool, metacopy: bool) -> None:
    upper = upper_of(stack)
    work = stack.work
    assert work is not None
    if res.index_copy is not None:
        # Another name copied this file up: this one becomes one more name of that copy.
        hardlinks.link_up(stack, res.index_copy, res.path)
        return
    src = stack.layers[res.top]
    st = res.st
    if hardlinks.indexed(stack, st):
        # One copy for every name of the lower file, kept in the index, linked here.
        def build(temp: bytes) -> None:
            assert work is not None
            if res.metacopy:  # a lower metacopy file: the data from the layer below it
                build_entry(stack.layers[res.data], res.data_path, st, work, temp, data)
            else:
                build_entry(src, res.top_path, st, work, temp, data)
            copy_metadata(src, res.top_path, st, work, temp, stack.private)
            _keep_number(stack, res, work, temp)

        hardlinks.link_up(stack, hardlinks.copy_into_index(stack, res, build), res.path)
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
    layer, path = stack.meta_of(res)
    value = xattr_of(layer, path, stack.ino_xattr, res.is_dir)
    if value is not None and value.isdigit() and 1 < int(value) < 1 << 63:
        return int(value)
    return stack.own_ino(res.st)
