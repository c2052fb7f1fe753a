"""Rename (the kernel's ovl_rename).

A directory that has lower parts moves only with ``redirect_dir=on``: the directory alone
is copied up and renamed, and records in ``overlay.redirect`` where its lower parts are
(``redirect``: its old name when it stays in the same directory, else its absolute lower
path), so its contents are never copied. Without it: EXDEV, and ``mv`` falls back to copying, as on
kernel overlayfs by default. Everything else is copied up and renamed within the upper
layer; the old name gets a whiteout where a lower entry would show through it; a directory
without lower parts moved to where a lower entry would show through becomes opaque.
"""

from __future__ import annotations

import errno
import os

from unionfs.safepath import RENAME_EXCHANGE, RENAME_NOREPLACE, join
from unionfs.union import copyup, hardlinks, redirect, whiteout
from unionfs.union.copyup import copy_up
from unionfs.union.create import check_new
from unionfs.union.lookup import check_name, lookup
from unionfs.union.readdir import is_empty
from unionfs.union.remove import lower_positive
from unionfs.union.stack import Resolved, Stack, upper_of


def _fail(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def rename(
    stack: Stack,
    old_parent: Resolved,
    old_name: bytes,
    new_parent: Resolved,
    new_name: bytes,
    flags: int = 0,
) -> tuple[Resolved, Resolved | None]:
    """Rename; returns (the moved entry at its new path, what was at the new path before)."""
    upper = upper_of(stack)
    check_name(old_name)
    check_name(new_name)
    if flags & ~(RENAME_EXCHANGE | RENAME_NOREPLACE) or flags == RENAME_EXCHANGE | RENAME_NOREPLACE:
        raise _fail(errno.EINVAL)
    src = lookup(stack, old_parent, old_name)
    if src is None:
        raise _fail(errno.ENOENT)
    dst = lookup(stack, new_parent, new_name)
    if dst is None and not flags & RENAME_EXCHANGE:
        check_new(stack, new_parent, new_name)  # nothing is copied up before every check
    if flags & RENAME_NOREPLACE and dst is not None:
        raise _fail(errno.EEXIST)
    if flags & RENAME_EXCHANGE and dst is None:
        raise _fail(errno.ENOENT)
    if src.path == (dst.path if dst else None):
        return src, dst
    # The order of the kernel's checks: the VFS's (types), then ovl_rename's (EXDEV before
    # ovl_check_empty_dir).
    if dst is not None and not flags & RENAME_EXCHANGE:
        if src.is_dir and not dst.is_dir:
            raise _fail(errno.ENOTDIR)
        if dst.is_dir and not src.is_dir:
            raise _fail(errno.EISDIR)
    moves_lower_dir = (src.is_dir and redirect.has_lower(src)) or (
        flags & RENAME_EXCHANGE and dst is not None and dst.is_dir and redirect.has_lower(dst)
    )
    if moves_lower_dir and not stack.features.create_redirects:
        raise _fail(errno.EXDEV)
    if dst is not None and not flags & RENAME_EXCHANGE:
        if dst.is_dir and not is_empty(stack, dst):
            raise _fail(errno.ENOTEMPTY)
        if hardlinks.one_inode(stack, src, dst):
            # Two names of one upper file: rename(2) does nothing. Names of a lower hard
            # link are one inode only with index=on; otherwise they are separate inodes of
            # the overlay (copy-up breaks the link) and the rename goes ahead, as on the
            # kernel.
            return src, dst

    samedir = old_parent.path == new_parent.path
    redirect.check_file_redirect(stack, src, samedir)
    if flags & RENAME_EXCHANGE:
        assert dst is not None
        redirect.check_file_redirect(stack, dst, samedir)
    new_parent = copy_up(stack, new_parent)
    old_parent = copy_up(stack, old_parent)
    src = copyup.copy_up_to_move(stack, src)
    src_path = src.path
    dst_path = join(new_parent.path, new_name)
    src_redirect = redirect.set_redirect(stack, src, samedir)

    if flags & RENAME_EXCHANGE:
        assert dst is not None
        dst = copyup.copy_up_to_move(stack, dst)
        dst_redirect = redirect.set_redirect(stack, dst, samedir)
        upper.rename_to(src_path, upper, dst_path, RENAME_EXCHANGE)
        if not src_redirect:
            _opaque_if_needed(stack, new_parent, new_name, src)
        if not dst_redirect:
            _opaque_if_needed(stack, old_parent, old_name, dst)
        return _at(stack, new_parent, new_name), _at(stack, old_parent, old_name)

    if dst is not None and not dst.is_dir:
        if hardlinks.lower_link(stack, dst):
            dst = copy_up(stack, dst)  # the other names see one link less
        hardlinks.adjust(stack, dst, -1)
    leave_whiteout = lower_positive(stack, old_parent, old_name)
    current = upper.lstat(dst_path)
    if dst is not None and dst.top == 0 and dst.is_dir:
        whiteout.clear_markers(stack, dst_path)
    if src.is_dir and current is not None and not dst:
        upper.unlink(dst_path)  # a whiteout device: a directory cannot be renamed over it
    upper.rename_to(src_path, upper, dst_path)
    whiteout.remove_whiteout_file(stack, dst_path)
    if not src_redirect:
        _opaque_if_needed(stack, new_parent, new_name, src)
    if leave_whiteout:
        whiteout.whiteout(stack, src_path)
    return _at(stack, new_parent, new_name), dst


def _opaque_if_needed(stack: Stack, parent: Resolved, name: bytes, moved: Resolved) -> None:
    """A directory moved into a merged directory is made opaque, as ovl_rename does: lower
    entries of the same name must not show through it, now or after later changes."""
    if moved.is_dir and (parent.is_merged or lower_positive(stack, parent, name)):
        assert stack.upper is not None
        path = join(parent.path, name)
        if not stack.upper.is_opaque(path):
            whiteout.set_opaque(stack, stack.upper, path)


def _at(stack: Stack, parent: Resolved, name: bytes) -> Resolved:
    """What *name* in upper directory *parent* resolves to now (a moved directory with a
    redirect merges with its lower parts again)."""
    found = lookup(stack, parent, name)
    assert found is not None and found.top == 0
    return found
