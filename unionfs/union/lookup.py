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
from collections.abc import Callable, Sequence

from unionfs import layerfmt
from unionfs.safepath import join, split
from unionfs.union import hardlinks
from unionfs.union.redirect import redirect_of
from unionfs.union.stack import Resolved, Stack, StatLike, normal_paths

WHITEOUT = object()
"""What a layer shows for a whited-out name, as opposed to None (nothing there)."""

Observation = StatLike | object | None


def merge(
    stack: Stack,
    parent: Resolved,
    name: bytes,
    observe: Callable[[int, bytes], Observation],
    copies: bool = True,
) -> Resolved | None:
    """Apply the overlay rules to what each of *parent*'s layers holds under *name*.

    *observe(i, path)* tells what layer *i* has at *path*: a stat result, WHITEOUT or
    None. It is called top down and only as far as the rules need. *path* is the name in
    the parent's part of layer *i*, unless a layer above recorded a redirect (the kernel's
    ovl_check_redirect): a relative one replaces the name, an absolute one is looked up
    from the root of every layer below the one that holds it. A regular file with the
    metacopy mark goes on down to the file that holds its data. With ``index=on`` a lower
    hard link whose file was copied up by another name shows that copy (``hardlinks``);
    *copies* False leaves it as the lower layers hold it (for questions about them
    alone). A query: nothing is written, whatever it finds.
    """
    path = join(parent.path, name)
    found: list[int] = []
    where: list[bytes] = []
    top: StatLike | None = None
    candidates: Sequence[int] = parent.layers
    absolute: bytes | None = None  # once an absolute redirect is seen: the path in each layer
    component = name  # otherwise: the name in the parent's part of each layer
    last = len(stack.layers) - 1
    wants_data = False
    position = 0
    while position < len(candidates):
        index = candidates[position]
        position += 1
        here = absolute if absolute is not None else join(parent.path_in(index), component)
        seen = observe(index, here)
        if seen is None:
            continue
        if seen is WHITEOUT:
            break
        seen = typing.cast(StatLike, seen)  # neither None nor WHITEOUT
        if wants_data:
            if not stat.S_ISREG(seen.st_mode):
                break
            if not is_metacopy(stack, index, here):
                found.append(index)
                where.append(here)
                wants_data = False
                break
            # A metacopy file between (an upper turned lower layer): the data is further
            # down, along this file's own redirect, as ovl_lookup goes on to the first file
            # without the mark.
            if index == last:
                break
        elif top is None:
            top = seen
        # A lower entry joins the directory above only if it is a directory and the
        # directory above is not opaque (checked only now: most directories never need it).
        elif not stat.S_ISDIR(seen.st_mode) or stack.layers[found[-1]].is_opaque(where[-1]):
            break
        if not wants_data:
            found.append(index)
            where.append(here)
            if index == last:
                break
            if not stat.S_ISDIR(seen.st_mode):
                if not (stat.S_ISREG(seen.st_mode) and is_metacopy(stack, index, here)):
                    break
                wants_data = True
        target = redirect_of(stack, index, here, stat.S_ISDIR(seen.st_mode))
        if target is None:
            continue
        if target.startswith(b"/"):
            absolute = target.strip(b"/")
            candidates = range(index + 1, last + 1)
            position = 0
        elif absolute is not None:
            absolute = join(split(absolute)[0], target)
        else:
            component = target
    if top is None:
        return None
    if wants_data:
        # The kernel: "metacopy with no lower data found - abort lookup".
        raise OSError(errno.EIO, f"metacopy file {os.fsdecode(path)!r} has no data below it")
    found_res = Resolved(path, tuple(found), top, normal_paths(path, where))
    if copies and stack.features.index and found_res.top != 0 and not found_res.is_dir:
        return hardlinks.shown_copy(stack, found_res)
    return found_res


def is_metacopy(stack: Stack, index: int, path: bytes) -> bool:
    """Regular file *path* of layer *index* holds only metadata (``overlay.metacopy``)."""
    if not stack.features.metacopy:
        return False
    return stack.layers[index].getxattr(path, stack.metacopy_xattr) is not None


def check_name(name: bytes) -> None:
    if len(name) > layerfmt.NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))


def lookup(stack: Stack, parent: Resolved, name: bytes, copies: bool = True) -> Resolved | None:
    """The entry *name* in merged directory *parent*, or None.

    Marker names (``.wh.*``) are never visible. Raises ENAMETOOLONG for names over 255 bytes.
    """
    check_name(name)
    if layerfmt.is_marker_name(name) or name in (b".", b"..", b"") or b"/" in name:
        return None
    return merge(stack, parent, name, lambda index, path: observe(stack, index, path), copies)


def observe(stack: Stack, index: int, path: bytes) -> Observation:
    """What layer *index* holds at *path*: its lstat, WHITEOUT (either form) or None."""
    layer = stack.layers[index]
    st = layer.lstat(path)
    if st is None:
        dirname, name = split(path)
        wh_name = join(dirname, layerfmt.whiteout_file_name(name))
        return WHITEOUT if layer.lstat(wh_name) is not None else None
    if layerfmt.is_whiteout_device(st.st_mode, st.st_rdev) or is_xwhiteout(stack, index, path, st):
        return WHITEOUT
    return st


def is_xwhiteout(stack: Stack, index: int, path: bytes, st: StatLike) -> bool:
    """An empty regular file marked ``overlay.whiteout``: a whiteout (Linux 6.7's
    "xwhiteout"). The kernel's lookup takes one in any layer; its readdir hides one only in
    a lower directory marked ``overlay.opaque=x`` and lists the others although they
    cannot be looked up: here both hide them, so a listing never shows a dead name."""
    if not layerfmt.may_be_xwhiteout(st.st_mode, st.st_size):
        return False
    layer = stack.layers[index]
    names = stack.xwhiteout_xattrs
    if len(names) == 1:
        return layer.getxattr(path, names[0]) is not None
    # One listxattr for the several names: empty files are common (touch, lock files),
    # and each is observed by every lookup and listing of its directory.
    listed = layer.listxattr(path)
    return any(name in listed for name in names)


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
