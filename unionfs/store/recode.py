"""Re-encoding an image's layers as gzip, zstd, eStargz or zstd:chunked (``convert``, ``push
--compression-format``). gzip, zstd and zstd:chunked keep each tar stream byte for byte
(same diff_ids); eStargz appends to it, so the config gets new diff_ids. New blobs go to
the ``BlobDir`` given, and a new OCI manifest is built; nothing is recorded as an image.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass

from unionfs import imageformat
from unionfs.errors import UserError
from unionfs.imageformat import LAYER_GZIP, LAYER_ZSTD, OCI_CONFIG, Descriptor
from unionfs.store import estargz, zstdchunked
from unionfs.store.blobs import BlobDir
from unionfs.store.compress import Compressor, open_layer
from unionfs.store.images import ImageStore
from unionfs.store.progress import Progress

FORMATS = ("gzip", "zstd", "estargz", "zstd:chunked")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Converted:
    manifest_digest: str
    manifest: bytes
    recoded: int  # layers written anew
    kept: int  # layers already in the format asked
    diff_ids_changed: bool


def layer_format(desc: Descriptor) -> str:
    """What a layer descriptor says its blob is: one of FORMATS, or ``tar``."""
    if estargz.TOC_DIGEST in desc.annotations:
        return "estargz"
    if zstdchunked.checksum(desc.annotations) is not None:
        return "zstd:chunked"
    if desc.media_type.endswith(("+gzip", ".tar.gzip")):
        return "gzip"
    if desc.media_type.endswith("+zstd"):
        return "zstd"
    return "tar"


def recode_layer(
    blob_path: str,
    fmt: str,
    out: typing.BinaryIO,
    *,
    chunk_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Descriptor, str]:
    """Write the layer in *blob_path* (any compression) to *out* as *fmt*: its new
    descriptor and diff_id."""
    with open_layer(blob_path) as tar:
        if fmt in ("gzip", "zstd"):
            sink = Compressor(out, fmt, progress)
            while data := tar.read(_CHUNK):
                sink.write(data)
            diff_id, digest, size = sink.finish()
            return Descriptor(sink.media_type, digest, size), diff_id
        kw: dict[str, typing.Any] = {"progress": progress}
        if chunk_size is not None:
            kw["chunk_size"] = chunk_size
        if fmt == "estargz":
            blob = estargz.write_estargz(tar, out, **kw)
        elif fmt == "zstd:chunked":
            blob = zstdchunked.write_zstd_chunked(tar, out, **kw)
        else:
            raise UserError(f"unknown compression format {fmt!r} ({', '.join(FORMATS)})")
    return Descriptor(blob.media_type, blob.digest, blob.size, dict(blob.annotations)), blob.diff_id


def convert_image(
    store: ImageStore,
    ref: str,
    fmt: str,
    dest: BlobDir,
    *,
    chunk_size: int | None = None,
    show_progress: bool | None = None,
) -> Converted:
    """The image *ref* of *store* with every layer in *fmt*; new blobs (layers, config,
    manifest) are written to *dest*, which may be the store's own ``blobs``."""
    if fmt not in FORMATS:
        raise UserError(f"unknown compression format {fmt!r} ({', '.join(FORMATS)})")
    _digest, data = store.image_manifest(ref)
    manifest = imageformat.parse_manifest(data, f"image {ref}")
    config_bytes = store.blobs.read(manifest.config.digest)
    config = imageformat.parse_config(config_bytes)
    old_ids = imageformat.diff_ids(config)
    if len(old_ids) != len(manifest.layers):
        raise UserError(f"image {ref}: its config lists {len(old_ids)} diff_ids for "
                        f"{len(manifest.layers)} layers")  # fmt: skip
    layers: list[Descriptor] = []
    new_ids: list[str] = []
    recoded = 0
    for number, (desc, old_id) in enumerate(zip(manifest.layers, old_ids, strict=True), 1):
        if layer_format(desc) == fmt:
            # The same bytes; a Docker media type becomes its OCI twin in an OCI manifest.
            media = {"gzip": LAYER_GZIP, "zstd": LAYER_ZSTD}.get(fmt, desc.media_type)
            layers.append(dataclasses.replace(desc, media_type=media))
            new_ids.append(old_id)
            continue
        bar = Progress(f"layer {number}/{len(manifest.layers)} to {fmt}",
                       desc.size, show_progress)  # fmt: skip
        with dest.writer() as out:
            new, diff_id = recode_layer(store.blob_path(desc.digest), fmt,
                                        typing.cast(typing.BinaryIO, out),
                                        chunk_size=chunk_size, progress=bar)  # fmt: skip
        if bar.done_bytes:
            bar.done()
        if out.digest != new.digest:
            raise AssertionError("the blob written differs from the one encoded")  # a bug
        if fmt != "estargz" and diff_id != old_id:
            raise UserError(f"image {ref}: layer {desc.digest[:19]} holds {diff_id[:19]}, "
                            f"its config says {old_id[:19]}")  # fmt: skip
        layers.append(new)
        new_ids.append(diff_id)
        recoded += 1
    changed = new_ids != old_ids
    if changed:
        config["rootfs"]["diff_ids"] = new_ids
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = dest.add_bytes(config_bytes)
    config_desc = Descriptor(OCI_CONFIG, config_digest, len(config_bytes))
    new_manifest = imageformat.build_manifest(config_desc, layers)
    digest = dest.add_bytes(new_manifest)
    return Converted(digest, new_manifest, recoded, len(layers) - recoded, changed)


class StagedImage:
    """A converted image whose new blobs sit in *staged*, the rest in *store*: the
    ``ImageSource`` a push of it reads from."""

    def __init__(self, store: ImageStore, staged: BlobDir, converted: Converted) -> None:
        self._store = store
        self._staged = staged
        self._converted = converted

    def image_manifest(self, ref: str) -> tuple[str, bytes]:
        return self._converted.manifest_digest, self._converted.manifest

    def blob_path(self, digest: str) -> str:
        if self._staged.has(digest):
            return self._staged.path(digest)
        return self._store.blob_path(digest)
