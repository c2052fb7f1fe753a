"""Lookup of one name in a merged directory (the kernel's namei.c).

Only the parent's own layers are searched, top down: a whiteout hides everything below; a
non-directory hides everything below; a directory keeps merging same-named directories of
lower layers until one of them is opaque or a lower entry is not a directory.
"""

from __future__ import annotations

import errno
import os
import stat
import typing
from collections.abc import Callable

from unionfs import layerfmt
from unionfs.safepath import join
from unionfs.union.stack import Resolved, Stack, StatLike

WHITEOUT = object()
"""What a layer shows for a whited-out name, as opposed to None (nothing there)."""

Observation = StatLike | object | None


def merge(
    stack: Stack, parent: Resolved, name: bytes, observe: Callable[[int], Observation]
) -> Resolved | None:
    """Apply the overlay rules to what each of *parent*'s layers holds under *name*.

    *observe(i)* tells what layer *i* has: a stat result, WHITEOUT or None. It is called
    top down and only as far as the rules need.
    """
    path = join(parent.path, name)
    found: list[int] = []
    top: StatLike | None = None
    for index in parent.layers:
        seen = observe(index)
        if seen is None:
            continue
        if seen is WHITEOUT:
            break
        seen = typing.cast(StatLike, seen)  # neither None nor WHITEOUT
        if top is None:
            top = seen
            found.append(index)
            if not stat.S_ISDIR(seen.st_mode):
                break
            continue
        # A lower entry joins the directory above only if it is a directory and the
        # directory above is not opaque (checked only now: most directories never need it).
        if not stat.S_ISDIR(seen.st_mode) or stack.layers[found[-1]].is_opaque(path):
            break
        found.append(index)
    if top is None:
        return None
    return Resolved(path, tuple(found), top)


def check_name(name: bytes) -> None:
    if len(name) > layerfmt.NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))


def lookup(stack: Stack, parent: Resolved, name: bytes) -> Resolved | None:
    """The entry *name* in merged directory *parent*, or None.

    Marker names (``.wh.*``) are never visible. Raises ENAMETOOLONG for names over 255 bytes.
    """
    check_name(name)
    if layerfmt.is_marker_name(name) or name in (b".", b"..", b"") or b"/" in name:
        return None
    wh_name = join(parent.path, layerfmt.whiteout_file_name(name))
    path = join(parent.path, name)

    def observe(index: int) -> Observation:
        layer = stack.layers[index]
        st = layer.lstat(path)
        if st is None:
            return WHITEOUT if layer.lstat(wh_name) is not None else None
        if layerfmt.is_whiteout_device(st.st_mode, st.st_rdev):
            return WHITEOUT
        return st

    return merge(stack, parent, name, observe)


def resolve_path(stack: Stack, path: bytes) -> Resolved | None:
    """Resolve a relative path component by component from the merged root."""
    current = stack.root()
    for name in filter(None, path.split(b"/")):
        if not current.is_dir:
            return None
        found = lookup(stack, current, name)
        if found is None:
            return None
        current = found
    return current
