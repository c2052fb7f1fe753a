"""A new name for an existing file (the kernel's ovl_link).

The file is copied up first, as ready to move (metadata only with ``metacopy=on``, which
then records where its data is, so the new name finds it too); the new name is a hard
link in the upper, made as any new entry is (``create``). With ``index=on`` the overlay's
link count of the file grows by one (``hardlinks``).
"""

from __future__ import annotations

import errno
import os

from unionfs.safepath import LayerDir
from unionfs.union import hardlinks, redirect
from unionfs.union.copyup import copy_up_to_move
from unionfs.union.create import check_new, create_entry
from unionfs.union.stack import Resolved, Stack, normal_paths, upper_of


def check(stack: Stack, source: Resolved, parent: Resolved, name: bytes) -> bool | None:
    """The checks of a new name *name* in *parent* for *source*, before anything is copied
    up: the new name's (the VFS's), then the kernel's EXDEV for a redirect it could not
    record. Returns what ``create.check_new`` says, for ``link``."""
    if source.is_dir:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    over_whiteout = check_new(stack, parent, name)
    redirect.check_file_redirect(stack, source, samedir=False)
    return over_whiteout


def link(
    stack: Stack,
    source: Resolved,
    parent: Resolved,
    name: bytes,
    checked: bool = False,
    over_whiteout: bool | None = None,
) -> tuple[Resolved, Resolved]:
    """A new name for non-directory *source*; returns (source copied up, the new entry).
    *checked*: the caller ran ``check`` already, which said *over_whiteout*."""
    if not checked:
        over_whiteout = check(stack, source, parent, name)
    source = copy_up_to_move(stack, source)
    redirect.set_link_redirect(stack, source)
    upper = upper_of(stack)
    existing = source.path
    entry = create_entry(
        stack, parent, name, lambda layer, path, _: _link(upper, existing, layer, path),
        None, None, checked=True, over_whiteout=over_whiteout,
    )  # fmt: skip
    if source.metacopy:  # the new name finds the same data, by the absolute redirect
        paths = normal_paths(entry.path, (entry.path, source.data_path))
        entry = Resolved(entry.path, source.layers, entry.st, paths)
    if hardlinks.adjust(stack, source, +1):
        fresh = upper.lstat(source.path)
        assert fresh is not None
        entry = entry.with_st(fresh)
    # Two names of one upper file: the new name's lstat, taken after the link, is the
    # source's too.
    return source.with_st(entry.st), entry


def _link(upper: LayerDir, existing: bytes, layer: LayerDir, path: bytes) -> None:
    if layer is upper:
        upper.link(existing, path)
    else:
        src_base, src_name = upper.at(existing)
        base, name = layer.at(path)
        os.link(src_name, name, src_dir_fd=src_base, dst_dir_fd=base, follow_symlinks=False)
