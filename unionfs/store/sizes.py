"""Sizes as podman counts them: a layer's is its uncompressed tar, recorded at extraction
(measured once from its blob for a layer extracted before); an image's is its layers'
plus its config and manifest, the manifest twice, as containers/storage keeps it under two
keys (so the numbers agree with podman's to the byte).
"""

from __future__ import annotations

import os

import lmdb

from unionfs.store import compress
from unionfs.store.images import Image, ImageStore

_CHUNK = 1 << 20


def layer_size(store: ImageStore, diff_id: str) -> int:
    """The size of layer *diff_id*'s uncompressed tar (0 if the store lacks its blob)."""
    known = store.meta.layer_size(diff_id)
    if known is not None:
        return known
    rec = store.meta.layer(diff_id)
    if rec is None or not store.blobs.has(rec.digest):
        return 0
    total = 0
    with compress.open_layer(store.blobs.path(rec.digest)) as stream:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
    try:
        with store.meta.write() as txn:
            store.meta.put_layer_size(txn, diff_id, total)
    except lmdb.ReadonlyError:
        pass  # another user's store, readable only: measured again next time
    return total


def image_size(store: ImageStore, image: Image) -> int:
    """podman's ``Size`` of *image*: layers uncompressed + config + manifest twice."""
    layers = sum(layer_size(store, d) for d in image.record.diff_ids)
    config = store.blobs.size(image.record.config) if store.blobs.has(image.record.config) else 0
    manifest = store.blobs.size(image.digest) if store.blobs.has(image.digest) else 0
    return layers + config + 2 * manifest


def unique_size(store: ImageStore, image: Image, others: list[Image]) -> int:
    """What removing *image* alone would free: its layers no other image has, and its
    config and manifest (``system df -v``'s UNIQUE SIZE)."""
    shared = {d for other in others if other.digest != image.digest
              for d in other.record.diff_ids}  # fmt: skip
    return image_size(store, image) - sum(layer_size(store, d)
                                          for d in set(image.record.diff_ids) & shared)  # fmt: skip


def tree_size(path: str) -> int:
    """Bytes of the files below *path* (their lstat sizes; directories not counted, a file
    gone meanwhile counts nothing): what removing a layer dir, an upper or a volume frees."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
