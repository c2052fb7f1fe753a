"""Pruning the store: ``unwanted_images`` (dangling ones, or every image no container uses),
then ``remove_orphans``: recorded layers no image or container uses (``import-layer``'s,
a removed image's kept for a container since removed), layer directories nothing
records and blobs nothing refers to. What nothing records yet may be a pull or import at
work: it is kept for ``GRACE`` seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from unionfs.store import sizes
from unionfs.store.images import Image, ImageStore, Use

GRACE = 3600.0
Uses = Callable[[], list[Use]]


@dataclass(frozen=True, slots=True)
class Orphans:
    layers: tuple[str, ...]  # diff_ids: recorded, or only a directory in layers/
    blobs: tuple[str, ...]  # digests

    def __bool__(self) -> bool:
        return bool(self.layers or self.blobs)


def unwanted_images(store: ImageStore, uses: Uses, everything: bool) -> list[Image]:
    """The images ``image prune`` removes: dangling ones not used by a container; with
    *everything*, every image no container uses."""
    used = {u.image for u in uses()}
    return [image for image in store.images()
            if image.digest not in used and (everything or not image.names)]  # fmt: skip


def _old(path: str, now: float) -> bool:
    try:
        return now - os.lstat(path).st_mtime > GRACE
    except FileNotFoundError:
        return False


def orphans(store: ImageStore, uses: Uses, now: float | None = None) -> Orphans:
    """What nothing holds on to (see the module docstring); call with the lock held."""
    now = time.time() if now is None else now
    used_dirs = {d for u in uses() for d in u.lowers}
    images = store.meta.all_images()
    wanted_layers = {d for rec in images for d in rec.diff_ids}
    keep_blobs = {b for rec in images for b in (rec.manifest, rec.config, *rec.blobs)}
    layers: list[str] = []
    their_blobs: set[str] = set()  # of recorded orphan layers: no writer is at work on them
    for rec in store.meta.all_layers():
        if rec.diff_id in wanted_layers or store.layer_path(rec.diff_id) in used_dirs:
            keep_blobs.add(rec.digest)
        else:
            layers.append(rec.diff_id)
            their_blobs.add(rec.digest)
    recorded = {rec.diff_id for rec in store.meta.all_layers()}
    for name in sorted(os.listdir(store.layers_dir)):
        if name.startswith(".") or len(name) != 64:
            continue  # temps and removals in progress are scratch's
        diff_id = f"sha256:{name}"
        path = os.path.join(store.layers_dir, name)
        if (diff_id not in recorded and diff_id not in wanted_layers
                and path not in used_dirs and _old(path, now)):  # fmt: skip
            layers.append(diff_id)
    blobs = [f"sha256:{name}" for name in sorted(os.listdir(store.blobs.dir))
             if not name.startswith(".") and f"sha256:{name}" not in keep_blobs
             and (f"sha256:{name}" in their_blobs
                  or _old(os.path.join(store.blobs.dir, name), now))]  # fmt: skip
    return Orphans(tuple(layers), tuple(blobs))


def size_of(store: ImageStore, found: Orphans) -> int:
    """Bytes on disk that removing *found* frees (files' sizes; directories not counted)."""
    total = sum(store.blobs.size(b) for b in found.blobs if store.blobs.has(b))
    return total + sum(sizes.tree_size(store.layer_path(d)) for d in found.layers)


def remove_orphans(store: ImageStore, uses: Uses) -> tuple[Orphans, int]:
    """Remove what nothing holds on to, under the store lock: (what, bytes freed)."""
    with store.locked():
        found = orphans(store, uses)
        freed = size_of(store, found)
        with store.meta.write() as txn:
            for diff_id in found.layers:
                store.meta.delete_layer(txn, diff_id)
        for diff_id in found.layers:
            store.remove_layer_dir(diff_id)
        for digest in found.blobs:
            store.blobs.remove(digest)
    return found, freed
