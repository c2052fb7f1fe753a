"""Writing markers into the upper layer: whiteouts and opaque directories.

Forms follow the stack's ``MarkerStyle``. A whiteout that replaces an existing upper entry
is built in the work directory and swapped in (rename, or RENAME_EXCHANGE for a
directory), so no moment shows the lower entry again.
"""

from __future__ import annotations

import os
import stat

from unionfs import layerfmt
from unionfs.safepath import RENAME_EXCHANGE, LayerDir, join, split
from unionfs.union.stack import Stack


def _upper_work(stack: Stack) -> tuple[LayerDir, LayerDir]:
    assert stack.upper is not None and stack.work is not None
    return stack.upper, stack.work


def has_whiteout(stack: Stack, path: bytes) -> bool:
    """Whether the upper layer holds a whiteout (either form) for *path*."""
    upper, _ = _upper_work(stack)
    st = upper.lstat(path)
    if st is not None:
        return layerfmt.is_whiteout_device(st.st_mode, st.st_rdev)
    parent, name = split(path)
    return upper.lstat(join(parent, layerfmt.whiteout_file_name(name))) is not None


def remove_whiteout_file(stack: Stack, path: bytes) -> None:
    """Drop a ``.wh.NAME`` file for *path*, if there is one."""
    upper, _ = _upper_work(stack)
    parent, name = split(path)
    marker = join(parent, layerfmt.whiteout_file_name(name))
    if upper.lstat(marker) is not None:
        upper.unlink(marker)


def _make_device(layer: LayerDir, path: bytes) -> None:
    layer.mknod(path, stat.S_IFCHR, 0)


def _make_file(layer: LayerDir, path: bytes) -> None:
    os.close(layer.create(path, os.O_WRONLY, 0))


def whiteout(stack: Stack, path: bytes) -> None:
    """Hide *path*: replace whatever the upper holds there by a whiteout."""
    upper, work = _upper_work(stack)
    current = upper.lstat(path)
    if stack.style.device_whiteouts:
        if current is None:
            _make_device(upper, path)
            return
        temp = stack.temp_name()
        _make_device(work, temp)
        if stat.S_ISDIR(current.st_mode):
            work.rename_to(temp, upper, path, RENAME_EXCHANGE)
            work.remove_tree(temp)  # the old directory, now in the work directory
        else:
            work.rename_to(temp, upper, path)
        return
    parent, name = split(path)
    marker = join(parent, layerfmt.whiteout_file_name(name))
    if upper.lstat(marker) is None:
        _make_file(upper, marker)
    if current is not None:
        upper.remove_tree(path)


def set_opaque(stack: Stack, layer: LayerDir, path: bytes) -> None:
    """Mark directory *path* of *layer* (the upper or the work dir) opaque."""
    layer.setxattr(path, stack.style.opaque_xattr, b"y")
    if stack.style.opaque_file:
        _make_file(layer, join(path, layerfmt.OPAQUE_MARKER))


def clear_markers(stack: Stack, path: bytes) -> None:
    """Remove every marker inside upper directory *path* (whose merged view is empty)."""
    upper, _ = _upper_work(stack)
    for name, _ in list(upper.scandir(path)):
        upper.remove_tree(join(path, name))
