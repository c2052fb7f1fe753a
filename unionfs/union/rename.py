"""Rename (the kernel's ovl_rename and ovl_set_redirect).

A directory that has lower parts moves only with ``redirect_dir=on``: the directory alone
is copied up and renamed, and records in ``overlay.redirect`` where its lower parts are
(its old name when it stays in the same directory, else its absolute lower path), so its
contents are never copied. Without it: EXDEV, and ``mv`` falls back to copying, as on
kernel overlayfs by default. Everything else is copied up and renamed within the upper
layer; the old name gets a whiteout where a lower entry would show through it; a directory
without lower parts moved to where a lower entry would show through becomes opaque.
"""

from __future__ import annotations

import errno
import os
import stat

from unionfs.safepath import RENAME_EXCHANGE, RENAME_NOREPLACE, join, split
from unionfs.union import links, whiteout
from unionfs.union.copyup import copy_up, copy_up_data, upper_of
from unionfs.union.create import check_new
from unionfs.union.lookup import check_name, lookup, redirect_of
from unionfs.union.readdir import is_empty
from unionfs.union.remove import lower_positive
from unionfs.union.stack import Resolved, Stack

REDIRECT_MAX = 256  # the kernel's redirect_max module parameter (its default)


def _fail(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _has_lower(res: Resolved) -> bool:
    return any(i != 0 for i in res.layers)


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
    moves_lower_dir = (src.is_dir and _has_lower(src)) or (
        flags & RENAME_EXCHANGE and dst is not None and dst.is_dir and _has_lower(dst)
    )
    if moves_lower_dir and not stack.features.create_redirects:
        raise _fail(errno.EXDEV)
    if dst is not None and not flags & RENAME_EXCHANGE:
        if dst.is_dir and not is_empty(stack, dst):
            raise _fail(errno.ENOTEMPTY)
        same_file = (dst.st.st_dev, dst.st.st_ino) == (src.st.st_dev, src.st.st_ino)
        same_layer = src.top == dst.top and (src.top == 0 or links.indexed(stack, src.st))
        if same_file and same_layer:
            # Two names of one upper file: rename(2) does nothing. Names of a lower hard
            # link are one inode only with index=on; otherwise they are separate inodes of
            # the overlay (copy-up breaks the link) and the rename goes ahead, as on the
            # kernel.
            return src, dst

    samedir = old_parent.path == new_parent.path
    check_file_redirect(stack, src, samedir)
    if flags & RENAME_EXCHANGE:
        assert dst is not None
        check_file_redirect(stack, dst, samedir)
    new_parent = copy_up(stack, new_parent)
    old_parent = copy_up(stack, old_parent)
    src = copy_up_to_move(stack, src)
    src_path = src.path
    dst_path = join(new_parent.path, new_name)
    src_redirect = _set_redirect(stack, src, samedir)

    if flags & RENAME_EXCHANGE:
        assert dst is not None
        dst = copy_up_to_move(stack, dst)
        dst_redirect = _set_redirect(stack, dst, samedir)
        upper.rename_to(src_path, upper, dst_path, RENAME_EXCHANGE)
        if not src_redirect:
            _opaque_if_needed(stack, new_parent, new_name, src)
        if not dst_redirect:
            _opaque_if_needed(stack, old_parent, old_name, dst)
        return _at(stack, new_parent, new_name), _at(stack, old_parent, old_name)

    if dst is not None and not dst.is_dir:
        if dst.top != 0 and links.indexed(stack, dst.st):
            dst = copy_up(stack, dst)  # the other names see one link less
        links.adjust(stack, dst, -1)
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


def copy_up_to_move(stack: Stack, res: Resolved) -> Resolved:
    """*res* in the upper, ready to move or to get another name: with ``metacopy=on`` a
    regular file comes up (or stays) metadata-only, as the kernel's (its redirect then
    says where its data is); otherwise with its data."""
    meta = stack.features.metacopy and stat.S_ISREG(res.st.st_mode)
    res = copy_up(stack, res, meta=meta)
    return res if meta else copy_up_data(stack, res)


def _set_redirect(stack: Stack, moving: Resolved, samedir: bool) -> bool:
    """Record where directory *moving*'s lower parts, or metacopy file *moving*'s data,
    are before it moves (the kernel's ovl_set_redirect); False when there is nothing below
    it (a plain upper entry needs no record).

    In the same directory its old name is enough (relative); elsewhere the absolute path
    of its lower parts, built as ovl_get_redirect does: from its own name upwards, each
    component replaced by that directory's own redirect, up to an absolute one or the root.
    A redirect already there stays if it still fits.
    """
    if not ((moving.is_dir and _has_lower(moving)) or moving.metacopy):
        return False
    upper = upper_of(stack)
    if moving.is_dir:
        current = upper.dir_getxattr(moving.path, stack.redirect_xattr)
    else:
        current = upper.getxattr(moving.path, stack.redirect_xattr)
    if current and (samedir or current.startswith(b"/")):
        return True
    value = redirect_value(stack, moving.path, samedir)
    if len(value) > REDIRECT_MAX:
        raise _fail(errno.EXDEV)  # the kernel too: mv then copies
    upper.setxattr(moving.path, stack.redirect_xattr, value)
    return True


def redirect_value(stack: Stack, path: bytes, samedir: bool) -> bytes:
    """The redirect the kernel records for *path* before it moves (ovl_get_redirect): its
    name within the same directory; otherwise, from its name upwards, each component
    replaced by that directory's own redirect, up to an absolute one or the root."""
    if samedir:
        return split(path)[1]
    upper = upper_of(stack)
    parts: list[bytes] = []
    while path:
        parent, name = split(path)
        own = None
        st = upper.lstat(path)
        if st is not None and (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            own = redirect_of(stack, 0, path, stat.S_ISDIR(st.st_mode))
        parts.append(own or name)
        if own is not None and own.startswith(b"/"):
            break
        path = parent
    value = b"/".join(reversed(parts))
    return value if value.startswith(b"/") else b"/" + value


def check_file_redirect(stack: Stack, moving: Resolved, samedir: bool) -> None:
    """EXDEV where the kernel with ``metacopy=on`` gives it for a regular file, before
    anything is done: the redirect its move or new name needs would pass redirect_max."""
    if not (stack.features.metacopy and stat.S_ISREG(moving.st.st_mode)):
        return
    if moving.top == 0 and not moving.metacopy:
        return  # its data is up already: nothing to record
    upper = upper_of(stack)
    current = upper.getxattr(moving.path, stack.redirect_xattr) if moving.top == 0 else None
    if current and (samedir or current.startswith(b"/")):
        return
    if len(redirect_value(stack, moving.path, samedir)) > REDIRECT_MAX:
        raise _fail(errno.EXDEV)


def set_link_redirect(stack: Stack, source: Resolved) -> None:
    """A metacopy file about to get a second name records the absolute path of its data,
    which both names then find (the kernel's ovl_set_link_redirect)."""
    if source.metacopy:
        _set_redirect(stack, source, samedir=False)


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
