"""Removing entries (the kernel's dir.c, remove side).

A removed name leaves a whiteout only where a lower layer would otherwise show something
under it; inside an opaque or upper-only directory nothing is left behind. rmdir of a
merged directory works when its merged view is empty: the whiteouts inside the upper part
do not count, and go with it.
"""

from __future__ import annotations

import errno
import os

from unionfs.safepath import join
from unionfs.union import hardlinks, whiteout
from unionfs.union.copyup import copy_up
from unionfs.union.lookup import check_name, lookup
from unionfs.union.readdir import is_empty
from unionfs.union.stack import Resolved, Stack, normal_paths, upper_of


def lower_positive(stack: Stack, parent: Resolved, name: bytes) -> bool:
    """Whether the parent's lower layers show anything under *name* (the kernel's
    ovl_lower_positive): only then does removing it need a whiteout."""
    lowers = tuple(i for i in parent.layers if i != 0)
    if not lowers:
        return False
    paths = normal_paths(parent.path, [parent.path_in(i) for i in lowers])
    below = Resolved(parent.path, lowers, parent.st, paths)
    return lookup(stack, below, name, copies=False) is not None


def _existing(stack: Stack, parent: Resolved, name: bytes, found: Resolved | None) -> Resolved:
    if found is not None:
        return found
    check_name(name)
    res = lookup(stack, parent, name)
    if res is None:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
    return res


def unlink(
    stack: Stack, parent: Resolved, name: bytes, found: Resolved | None = None
) -> Resolved:
    """Remove non-directory *name*; returns what it was. *found*: what a lookup of *name*
    just found (under the same lock), or None to look it up."""
    upper_of(stack)
    res = _existing(stack, parent, name, found)
    if res.is_dir:
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
    if hardlinks.lower_link(stack, res):
        # The other names must see one link less (the kernel's ovl_nlink_start copies up
        # too): the count lives on the indexed copy.
        res = copy_up(stack, res)
    _remove(stack, parent, name, res)
    return res


def rmdir(
    stack: Stack, parent: Resolved, name: bytes, found: Resolved | None = None
) -> Resolved:
    """Remove directory *name* if its merged view is empty; returns what it was. *found*
    as for ``unlink``."""
    upper_of(stack)
    res = _existing(stack, parent, name, found)
    if not res.is_dir:
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    if not is_empty(stack, res):
        raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY))
    if res.top == 0:
        whiteout.clear_markers(stack, res.path)
    _remove(stack, parent, name, res)
    return res


def _remove(stack: Stack, parent: Resolved, name: bytes, res: Resolved) -> None:
    upper = upper_of(stack)
    path = join(parent.path, name)
    hardlinks.adjust(stack, res, -1)
    if lower_positive(stack, parent, name):
        copy_up(stack, parent)
        whiteout.whiteout(stack, path)
    elif res.top == 0:
        if res.is_dir:
            upper.rmdir(path)
        else:
            upper.unlink(path)
