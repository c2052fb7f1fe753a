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
from unionfs.union.create import create_entry
from unionfs.union.stack import Resolved, Stack, normal_paths, upper_of


def link(
    stack: Stack, source: Resolved, parent: Resolved, name: bytes
) -> tuple[Resolved, Resolved]:
    """A new name for non-directory *source*; returns (source copied up, the new entry)."""
    if source.is_dir:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    redirect.check_file_redirect(stack, source, samedir=False)
    source = copy_up_to_move(stack, source)
    redirect.set_link_redirect(stack, source)
    upper = upper_of(stack)
    existing = source.path
    entry = create_entry(
        stack, parent, name, lambda layer, path, _: _link(upper, existing, layer, path),
        None, None,
    )  # fmt: skip
    if source.metacopy:  # the new name finds the same data, by the absolute redirect
        paths = normal_paths(entry.path, (entry.path, source.data_path))
        entry = Resolved(entry.path, source.layers, entry.st, paths)
    hardlinks.adjust(stack, source, +1)
    fresh = upper.lstat(source.path)
    assert fresh is not None
    return source.with_st(fresh), entry


def _link(upper: LayerDir, existing: bytes, layer: LayerDir, path: bytes) -> None:
    if layer is upper:
        upper.link(existing, path)
    else:
        src_base, src_name = upper.at(existing)
        base, name = layer.at(path)
        os.link(src_name, name, src_dir_fd=src_base, dst_dir_fd=base, follow_symlinks=False)
