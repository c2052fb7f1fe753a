"""``save --format docker-archive``: an image as ``docker save`` and podman write it
(``manifest.json``, ``<config-hex>.json``, each layer uncompressed as ``<diff_id-hex>.tar``),
streamed (a pipe will do: each layer's size is known from ``sizes``) and reproducible. The
layers' blobs change (uncompressed), so the manifest digest does not survive a round trip.
"""

from __future__ import annotations

import io
import json
import tarfile
import typing

from unionfs.errors import UserError
from unionfs.store import compress, sizes
from unionfs.store.images import Image, ImageStore

PAX = tarfile.PAX_FORMAT


class _Exactly:
    """*size* bytes of *stream*, no more and no fewer (a UserError otherwise)."""

    def __init__(self, stream: typing.BinaryIO, size: int, what: str) -> None:
        self.stream = stream
        self.left = size
        self.what = what

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        data = self.stream.read(want) if want else b""
        if len(data) < want:
            raise UserError(f"{self.what} is shorter than recorded: the store is damaged")
        self.left -= len(data)
        return data


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o444
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write(store: ImageStore, image: Image, tags: list[str], out: typing.BinaryIO) -> None:
    """Write *image* (named *tags* in the archive) as a docker archive to *out*."""
    config_hex = image.record.config.removeprefix("sha256:")
    layers = [f"{d.removeprefix('sha256:')}.tar" for d in image.record.diff_ids]
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": tags, "Layers": layers}]
    with tarfile.open(fileobj=out, mode="w|", format=PAX) as tar:
        for diff_id, rel, blob in zip(image.record.diff_ids, layers, image.record.blobs,
                                      strict=True):  # fmt: skip
            size = sizes.layer_size(store, diff_id)
            with compress.open_layer(store.blobs.path(blob)) as stream:
                tar.addfile(_info(rel, size), _Exactly(stream, size, f"layer {diff_id[:19]}"))
                if stream.read(1):
                    raise UserError(f"layer {diff_id[:19]} is longer than recorded: the store "
                                    "is damaged")  # fmt: skip
        config = store.blobs.read(image.record.config)
        tar.addfile(_info(f"{config_hex}.json", len(config)), io.BytesIO(config))
        data = json.dumps(manifest, separators=(",", ":")).encode()
        tar.addfile(_info("manifest.json", len(data)), io.BytesIO(data))
