"""Pruning the chunk cache the lazy layers of a store share (``lazy/chunks/sha256``): a
chunk stays while a lazy layer not yet complete lists it in its TOC; any other goes (a
complete layer's data is in its tree, and a removed layer's is wanted by no one). A temp
file a killed daemon left is removed after ``GRACE`` seconds. ``rmi`` and ``system prune``
run it; a daemon that finds a chunk gone fetches it again, so it needs no lock.
"""

from __future__ import annotations

import contextlib
import os
import time

from unionfs.errors import UserError
from unionfs.lazy import layout

GRACE = 3600.0


def wanted_chunks(lazy_root: str) -> set[str]:
    """The hex digests of the chunks of every lazy layer under *lazy_root* not complete."""
    wanted: set[str] = set()
    with contextlib.suppress(FileNotFoundError), os.scandir(lazy_root) as it:
        for d in it:
            if d.name == "chunks" or not d.is_dir(follow_symlinks=False):
                continue
            if not os.path.isfile(os.path.join(d.path, layout.RECORD)):
                continue  # a pull at work (its temp) or a removal: no daemon serves it
            if layout.is_complete(d.path):
                continue
            try:
                rec, data = layout.load(d.path)
                toc = layout.parse_toc(rec, data)
            except UserError:
                # Unreadable: keep every chunk rather than guess (the next prune tries again).
                return {"*"}
            wanted.update(c.digest[7:] for e in toc.entries for c in e.chunks)
    return wanted


def prune_chunks(lazy_root: str, now: float | None = None) -> tuple[int, int]:
    """Remove the chunks no incomplete lazy layer wants: (files removed, bytes freed)."""
    now = time.time() if now is None else now
    wanted = wanted_chunks(lazy_root)
    if "*" in wanted:
        return 0, 0
    removed = freed = 0
    chunks = os.path.join(lazy_root, "chunks", "sha256")
    with contextlib.suppress(FileNotFoundError), os.scandir(chunks) as it:
        for f in it:
            if f.name in wanted:
                continue
            try:
                st = f.stat(follow_symlinks=False)
                if f.name.endswith(".tmp") and now - st.st_mtime < GRACE:
                    continue  # being written
                os.unlink(f.path)
            except FileNotFoundError:
                continue
            removed += 1
            freed += st.st_blocks * 512
    return removed, freed
