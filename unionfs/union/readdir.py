"""The merged listing of a directory (the kernel's readdir.c).

Every layer of the directory is read once; the highest layer decides each name, by the same
``merge`` rule that lookup uses, so a listing never shows what a lookup would not find.
"""

from __future__ import annotations

from unionfs import layerfmt
from unionfs.safepath import join
from unionfs.union.lookup import WHITEOUT, Observation, is_xwhiteout, merge, observe
from unionfs.union.stack import Resolved, Stack


def _layer_entries(stack: Stack, index: int, path: bytes) -> dict[bytes, Observation]:
    entries: dict[bytes, Observation] = {}
    whiteouts: list[bytes] = []
    for name, st in stack.layers[index].scandir(path):
        if layerfmt.is_marker_name(name):
            hidden = layerfmt.whited_out_name(name)
            if hidden is not None:
                whiteouts.append(hidden)
            continue
        if layerfmt.is_whiteout_device(st.st_mode, st.st_rdev) or is_xwhiteout(
            stack, index, join(path, name), st
        ):
            entries[name] = WHITEOUT
        else:
            entries[name] = st
    for hidden in whiteouts:
        # A real entry beats a .wh. file of the same layer, as lookup sees it.
        entries.setdefault(hidden, WHITEOUT)
    return entries


def list_dir(stack: Stack, directory: Resolved) -> list[tuple[bytes, Resolved]]:
    """Every visible entry of merged *directory* (without ``.`` and ``..``), upper first."""
    per_layer = {i: _layer_entries(stack, i, directory.path_in(i)) for i in directory.layers}
    names: dict[bytes, None] = {}
    for index in directory.layers:
        names.update(dict.fromkeys(per_layer[index]))
    listing: list[tuple[bytes, Resolved]] = []

    def seen(index: int, path: bytes, name: bytes) -> Observation:
        if index in per_layer and path == join(directory.path_in(index), name):
            return per_layer[index].get(name)
        return observe(stack, index, path)  # followed a redirect out of this directory

    for name in names:
        resolved = merge(stack, directory, name, lambda i, p, n=name: seen(i, p, n))  # type: ignore[misc]
        if resolved is not None:
            listing.append((name, resolved))
    return listing


def is_empty(stack: Stack, directory: Resolved) -> bool:
    """True when the merged directory shows nothing (whiteouts do not count)."""
    return not list_dir(stack, directory)


def names(stack: Stack, directory: Resolved) -> list[bytes]:
    return [name for name, _ in list_dir(stack, directory)]
