"""How much of an image pulled lazily is here: the bytes of its files' data in its layer
trees against all of them (a layer extracted whole counts whole, at its tar's size).
A layer refused by the prefetch's check shows as ``broken``. Reads the TOCs and ``filled``
logs only; no registry.
"""

from __future__ import annotations

import os

from unionfs.lazy import layout
from unionfs.lazy.serving import parse, regular_files
from unionfs.store import sizes
from unionfs.store.images import Image, ImageStore


def layer_presence(directory: str) -> tuple[int, int]:
    """(bytes here, bytes in all) of the regular files of the lazy layer *directory*."""
    rec, data = layout.load(directory)
    files = regular_files(parse(rec, data))
    done = layout.filled(directory)
    whole = {p: e for p, e in files.items() if p == e.path}  # each file once, not its links
    total = sum(e.size for e in whole.values())
    here = total if layout.is_complete(directory) else sum(
        e.size for p, e in whole.items() if p in done)
    return here, total


def presence(store: ImageStore, image: Image) -> tuple[int, int, bool] | None:
    """(bytes here, bytes in all, whether a layer was refused: ``layout.broken``) of
    *image*, or None when none of its layers is lazy."""
    here = total = 0
    lazy = broken = False
    for diff_id, blob in zip(image.record.diff_ids, image.record.blobs, strict=True):
        tree = store.lazy_tree(blob)
        if not os.path.isdir(store.layer_path(diff_id)) and os.path.isdir(tree):
            lazy = True
            h, t = layer_presence(os.path.dirname(tree))
            broken = broken or layout.broken(os.path.dirname(tree)) is not None
        else:
            h = t = sizes.layer_size(store, diff_id)
        here += h
        total += t
    return (here, total, broken) if lazy else None


def percent(found: tuple[int, int, bool]) -> str:
    here, total, broken = found
    if broken:
        return "broken"  # its blob is not what its TOC or diff_id says (the daemon's log)
    return "100%" if here >= total else f"{100 * here // max(total, 1)}%"
