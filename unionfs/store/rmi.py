"""Removing an image (``rmi``): untag a reference; with the image's last name, remove the
image and collect its blobs, layer dirs and lazy trees that nothing else uses.
All of it under the store lock. It never removes what another image or a container
still uses, and refuses to remove an image a container runs on.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from unionfs.errors import UserError
from unionfs.store import scratch
from unionfs.store.images import Image, ImageStore, Use
from unionfs.store.naming import name_for


def remove_image(
    store: ImageStore, ref: str, force: bool, containers: Callable[[], list[Use]]
) -> list[str]:
    """Untag *ref*; when it was the image's last name (or with *force*, or when *ref* is an
    id), remove the image and whatever of it no other image and no container uses.
    *containers()* lists what each container uses. Returns what was done."""
    done = []
    with store.locked():
        image = store.resolve(ref)
        names = store.meta.names()
        mine = [n for n, m in names.items() if m == image.digest]
        named = name_for(ref, names)
        if named is not None and len(mine) > 1 and not force:
            untag = [named]
        elif named is None and len(mine) > 1 and not force:
            raise UserError(f"image {ref} has {len(mine)} names: remove them one by one "
                            "or use rmi -f")  # fmt: skip
        else:
            untag = mine
        uses = containers()
        if len(untag) == len(mine):
            blocking = sorted(u.container for u in uses if u.image == image.digest)
            if blocking:
                raise UserError(f"image {ref} is in use by container {blocking[0]}: "
                                f"remove it first (unionfs rm {blocking[0]})")  # fmt: skip
        with store.meta.write() as txn:
            for n in untag:
                store.meta.delete_name(txn, n)
                done.append(f"Untagged: {n}")
            if len(untag) == len(mine):
                store.meta.delete_image(txn, image.digest)
        if len(untag) < len(mine):
            return done
        done.append(f"Deleted: {image.record.id}")
        _collect(store, image, {p for u in uses for p in u.lowers})
    return done


def _collect(store: ImageStore, gone: Image, used_dirs: set[str]) -> None:
    """Remove the blobs and layers of *gone* that nothing else uses (lock held)."""
    keep_blobs: set[str] = set()
    keep_layers: set[str] = set()
    for image in store.meta.all_images():
        keep_blobs.update((image.manifest, image.config, *image.blobs))
        keep_layers.update(image.diff_ids)
    doomed = [d for d in gone.record.diff_ids
              if d not in keep_layers and store.layer_path(d) not in used_dirs]  # fmt: skip
    for diff_id in set(gone.record.diff_ids) - set(doomed):
        kept = store.meta.layer(diff_id)  # export-layer serves a kept layer from this blob
        if kept is not None:
            keep_blobs.add(kept.digest)
    records = [store.meta.layer(d) for d in doomed]
    with store.meta.write() as txn:
        for diff_id in doomed:
            store.meta.delete_layer(txn, diff_id)
    for diff_id, rec in zip(doomed, records, strict=True):
        if rec is not None and rec.digest not in keep_blobs:
            store.blobs.remove(rec.digest)
        store.remove_layer_dir(diff_id)
    for digest in (gone.record.manifest, gone.record.config, *gone.record.blobs):
        if digest not in keep_blobs:
            store.blobs.remove(digest)
    for blob in set(gone.record.blobs) - keep_blobs:  # a lazy layer no one else uses
        tree = store.lazy_tree(blob)
        if os.path.isdir(tree) and tree not in used_dirs:
            gone_dir = f"{os.path.dirname(tree)}.rm-{os.getpid()}"
            os.rename(os.path.dirname(tree), gone_dir)
            scratch.remove_tree(gone_dir)
