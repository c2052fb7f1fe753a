"""An upper layer spelled out for a consumer without redirect or metacopy support.

An upper written with ``redirect_dir=on`` and ``metacopy=on`` holds records that only an
overlay reading them understands: a renamed directory is an empty upper directory whose
``overlay.redirect`` names where its contents are; a metacopy file is a hole the size of
its data. An OCI layer tarball (``unionfs commit``/``diff``), or kernel overlayfs mounted
without the options, needs instead what the records stand for: the renamed directory as
its whole merged tree at the new name, opaque (nothing at the new name below shows
through), next to the whiteout of the old name (the upper has it already); a metacopy file
as a whole file whose data comes from the lower layer that holds it (followed through
its own redirect when it was renamed). Nothing is written. An ``index=on`` upper is
taken as it is, like the kernel's without its index: names of an indexed hard link that
were never copied up themselves are not in the upper, so not in the result either (copy
each up first, ``copyup.copy_up`` of the name a lookup shows, to hand them over).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass

from unionfs import layerfmt
from unionfs.safepath import join
from unionfs.union.readdir import list_dir
from unionfs.union.redirect import redirect_of
from unionfs.union.stack import Resolved, Stack


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the spelled-out layer, parents before children.

    ``kind`` is "whiteout" (the name is deleted), "dir", or "entry" (any non-directory).
    ``meta`` is (layer root, path in it) of the inode whose type, owner, mode, times,
    xattrs and link target to use; ``data`` the same for a regular file's bytes (another
    layer for a metacopy file). ``opaque``: a directory that hides everything below it.
    """

    path: bytes
    kind: str
    meta: tuple[str, bytes] | None = None
    data: tuple[str, bytes] | None = None
    opaque: bool = False


def flatten(stack: Stack) -> Iterator[Change]:
    """What *stack*'s upper layer changes, without redirects or metacopy files.

    *stack* is the upper over its lowers (``Stack.from_dirs``) with redirects followed and
    metacopy on, so the rules resolve the records. Entries of the upper without either
    record come out as they are (meta and data from the upper).
    """
    upper = stack.upper
    if upper is None:
        raise ValueError("flatten needs a stack with an upper layer")
    yield from _upper_dir(stack, stack.root())


def _upper_dir(stack: Stack, directory: Resolved) -> Iterator[Change]:
    """The upper part of merged *directory*: each upper entry, spelled out."""
    upper = stack.upper
    assert upper is not None
    merged = dict(list_dir(stack, directory))
    for name, st in sorted(upper.scandir(directory.path)):
        path = join(directory.path, name)
        if layerfmt.is_marker_name(name):
            hidden = layerfmt.whited_out_name(name)
            if hidden is not None and hidden not in merged:
                yield Change(join(directory.path, hidden), "whiteout")
            continue
        if layerfmt.is_whiteout_device(st.st_mode, st.st_rdev):
            yield Change(path, "whiteout")
            continue
        res = merged.get(name)
        if res is None:
            continue  # not shown (cannot happen for a well-formed upper)
        if res.is_dir and _redirected(stack, res):
            yield from _whole_tree(stack, res)
        elif res.is_dir:
            yield _change(stack, res, opaque=upper.is_opaque(path))
            yield from _upper_dir(stack, res)
        else:
            yield _change(stack, res)


def _redirected(stack: Stack, res: Resolved) -> bool:
    return res.top == 0 and redirect_of(stack, 0, res.path, True) is not None


def _whole_tree(stack: Stack, res: Resolved) -> Iterator[Change]:
    """A renamed directory: opaque, with every entry of its merged view below it."""
    yield _change(stack, res, opaque=True)
    pending = [res]
    while pending:
        directory = pending.pop()
        for _, child in sorted(list_dir(stack, directory), key=lambda item: item[0]):
            yield _change(stack, child)
            if child.is_dir:
                pending.append(child)


def _change(stack: Stack, res: Resolved, opaque: bool = False) -> Change:
    meta = (stack.layers[res.top].root, res.top_path)
    if res.is_dir:
        return Change(res.path, "dir", meta, None, opaque)
    data = None
    if stat.S_ISREG(res.st.st_mode):
        data = (stack.layers[res.data].root, res.data_path)
    return Change(res.path, "entry", meta, data)
