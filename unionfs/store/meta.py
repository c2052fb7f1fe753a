"""The store's metadata: one LMDB environment at ``ROOT/meta``.

Named databases (keys and values are UTF-8; values JSON):
- ``images``: ``name:tag`` -> manifest digest;
- ``manifests``: manifest digest -> ``ImageRecord`` (config digest, layer diff_ids and blob
  digests, created, size);
- ``layers``: diff_id -> ``LayerRecord`` (the blob that holds it, its size and media type);
- ``settings``: ``style`` -> ``kernel`` or ``rootless`` (the marker forms of extracted layers);
- ``sizes``: diff_id -> the size of the layer's uncompressed tar (what podman shows).
Every change is one write transaction, so a reader sees a whole image or none of it.
Containers are not recorded here: their state.json names their image and layers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import lmdb

MAP_SIZE = 1 << 30


@dataclass(frozen=True, slots=True)
class LayerRecord:
    diff_id: str
    digest: str  # the compressed blob in blobs/
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class ImageRecord:
    manifest: str  # manifest digest
    config: str  # config digest (the image id)
    diff_ids: tuple[str, ...]  # bottom layer first, as in the config
    blobs: tuple[str, ...]  # the layer blob digests of the manifest, same order
    created: str
    size: int  # sum of the layer blob sizes

    @property
    def id(self) -> str:
        return self.config.removeprefix("sha256:")


def _load_image(raw: bytes) -> ImageRecord:
    d = json.loads(raw)
    return ImageRecord(d["manifest"], d["config"], tuple(d["diff_ids"]), tuple(d["blobs"]),
                       d["created"], d["size"])  # fmt: skip


def _dump(value: LayerRecord | ImageRecord) -> bytes:
    return json.dumps(asdict(value), sort_keys=True).encode()


class Meta:
    """The open environment. Methods each run one transaction; ``write()`` groups several."""

    def __init__(self, root: str) -> None:
        path = os.path.join(root, "meta")
        os.makedirs(path, mode=0o700, exist_ok=True)
        self.env = lmdb.open(path, map_size=MAP_SIZE, max_dbs=8, readahead=False)
        self.images = self.env.open_db(b"images")
        self.manifests = self.env.open_db(b"manifests")
        self.layers = self.env.open_db(b"layers")
        self.settings = self.env.open_db(b"settings")
        self.sizes = self.env.open_db(b"sizes")

    def close(self) -> None:
        self.env.close()

    def write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)

    # -- reads ---------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        with self.env.begin() as txn:
            raw = txn.get(key.encode(), db=self.settings)
        return None if raw is None else bytes(raw).decode()

    def name(self, name: str) -> str | None:
        with self.env.begin() as txn:
            raw = txn.get(name.encode(), db=self.images)
        return None if raw is None else bytes(raw).decode()

    def names(self) -> dict[str, str]:
        """Every name -> manifest digest."""
        with self.env.begin() as txn:
            return {bytes(k).decode(): bytes(v).decode()
                    for k, v in txn.cursor(db=self.images)}  # fmt: skip

    def image(self, manifest: str) -> ImageRecord | None:
        with self.env.begin() as txn:
            raw = txn.get(manifest.encode(), db=self.manifests)
        return None if raw is None else _load_image(raw)

    def all_images(self) -> list[ImageRecord]:
        with self.env.begin() as txn:
            return [_load_image(v) for _k, v in txn.cursor(db=self.manifests)]

    def layer_size(self, diff_id: str) -> int | None:
        """The uncompressed size of layer *diff_id*, if it was recorded."""
        with self.env.begin() as txn:
            raw = txn.get(diff_id.encode(), db=self.sizes)
        return None if raw is None else int(bytes(raw))

    def layer(self, diff_id: str) -> LayerRecord | None:
        with self.env.begin() as txn:
            raw = txn.get(diff_id.encode(), db=self.layers)
        return None if raw is None else LayerRecord(**json.loads(raw))

    def all_layers(self) -> Iterator[LayerRecord]:
        with self.env.begin() as txn:
            found = [LayerRecord(**json.loads(v)) for _k, v in txn.cursor(db=self.layers)]
        yield from found

    # -- writes (inside a write() transaction) --------------------------------------------
    def put_setting(self, txn: lmdb.Transaction, key: str, value: str) -> None:
        txn.put(key.encode(), value.encode(), db=self.settings)

    def put_layer_size(self, txn: lmdb.Transaction, diff_id: str, size: int) -> None:
        txn.put(diff_id.encode(), str(size).encode(), db=self.sizes)

    def put_layer(self, txn: lmdb.Transaction, rec: LayerRecord) -> None:
        """Record a layer unless it is known already (the first blob recorded stays)."""
        txn.put(rec.diff_id.encode(), _dump(rec), db=self.layers, overwrite=False)

    def put_image(self, txn: lmdb.Transaction, rec: ImageRecord) -> None:
        txn.put(rec.manifest.encode(), _dump(rec), db=self.manifests)

    def put_name(self, txn: lmdb.Transaction, name: str, manifest: str) -> None:
        txn.put(name.encode(), manifest.encode(), db=self.images)

    def delete_name(self, txn: lmdb.Transaction, name: str) -> None:
        txn.delete(name.encode(), db=self.images)

    def delete_image(self, txn: lmdb.Transaction, manifest: str) -> None:
        txn.delete(manifest.encode(), db=self.manifests)

    def delete_layer(self, txn: lmdb.Transaction, diff_id: str) -> None:
        txn.delete(diff_id.encode(), db=self.layers)
        txn.delete(diff_id.encode(), db=self.sizes)
