"""``pull --lazy``: an image from a registry with its manifest, its config and each layer's
TOC only. Each layer's TOC is found by byte ranges (the footer or the annotations), checked
against the digest the manifest annotates, kept, and turned into the layer's placeholder
tree; then the image is recorded, its layers being those trees until their data is all
here. A layer without a TOC makes the whole pull ``NoToc``: the caller pulls normally.
"""

from __future__ import annotations

import io
import os
import time
import typing
from dataclasses import dataclass

from unionfs import imageformat
from unionfs.errors import UserError
from unionfs.lazy import layout, placeholders
from unionfs.registry.client import Client
from unionfs.registry.manifest import Manifest
from unionfs.registry.ranges import RegistryRangeSource
from unionfs.registry.reference import Reference
from unionfs.registry.sources import BlobSources
from unionfs.registry.transfer import resolve
from unionfs.store import layertar, scratch
from unionfs.store.chunkread import fetch_toc, is_lazy
from unionfs.store.images import Image, ImageStore, normalize
from unionfs.store.meta import ImageRecord
from unionfs.store.toc import ESTARGZ


class NoToc(UserError):
    """A layer of the image has no TOC: it cannot be pulled lazily."""


@dataclass(slots=True)
class LazySummary:
    manifest_digest: str = ""
    layers: int = 0
    lazy: int = 0  # layers recorded lazily now
    present: int = 0  # layers already here (extracted, or lazy from before)
    toc_bytes: int = 0  # what the TOCs cost over the wire (ranges), all requests included
    requests: int = 0
    tree_seconds: float = 0.0  # spent building placeholder trees (local work, no network)


def check_lazy(manifest: Manifest) -> None:
    """NoToc unless every layer of *manifest* announces a TOC."""
    for desc in manifest.layers:
        if is_lazy(desc.annotations) is None:
            raise NoToc(f"layer {desc.digest[:19]} has no TOC (neither eStargz nor zstd:chunked)")


def pull_lazy(
    client: Client, ref: Reference, store: ImageStore, name: str | None, *,
    tls_verify: bool, authfile: str | None, resolved: tuple[str, bytes, Manifest] | None = None,
    sources: BlobSources | None = None,
) -> tuple[Image, LazySummary]:  # fmt: skip
    """Pull *ref* lazily into *store* under *name* (None: unnamed)."""
    client.ping()
    digest, data, manifest = resolved or resolve(client, ref)
    check_lazy(manifest)
    full = normalize(name) if name else None
    summary = LazySummary(manifest_digest=digest, layers=len(manifest.layers))
    config_desc = manifest.config
    if not store.has_blob(config_desc.digest):

        def consume(reader: typing.BinaryIO) -> None:
            store.add_blob(reader, config_desc.digest)  # verified as it is written

        client.fetch_blob(ref.repository, config_desc.digest, config_desc.size, consume)
    config = imageformat.parse_config(store.blobs.read(config_desc.digest))
    ids = imageformat.diff_ids(config)
    if len(ids) != len(manifest.layers):
        raise UserError(f"image config lists {len(ids)} diff_ids for "
                        f"{len(manifest.layers)} layers")  # fmt: skip
    lazy_root = os.path.join(store.root, "lazy")
    os.makedirs(lazy_root, mode=0o700, exist_ok=True)
    for desc, diff_id in zip(manifest.layers, ids, strict=True):
        tree = store.lazy_tree(desc.digest)
        if os.path.isdir(store.layer_path(diff_id)) or os.path.isdir(tree):
            summary.present += 1
            continue
        source = RegistryRangeSource(client, ref.repository, desc.digest, desc.size)
        toc, toc_json, toc_offset = fetch_toc(source, desc.annotations)
        summary.toc_bytes += source.stats.bytes
        summary.requests += source.stats.requests
        rec = layout.LazyRecord(
            ref=str(ref), digest=desc.digest, size=desc.size, media_type=desc.media_type,
            diff_id=diff_id, format=toc.format, toc_digest=toc.digest,
            toc_offset=toc_offset if toc.format == ESTARGZ else 0, tls_verify=tls_verify,
            authfile=authfile, annotations=dict(desc.annotations),
        )  # fmt: skip
        with scratch.temp_dir(lazy_root, 0o700) as tmp:
            os.mkdir(os.path.join(tmp, layout.TREE), layertar.LAYER_ROOT_MODE)
            started = time.monotonic()
            placeholders.build(toc, os.path.join(tmp, layout.TREE), store.style(), store.warn)
            summary.tree_seconds += time.monotonic() - started
            layout.save(tmp, rec, toc_json)
            try:
                os.rename(tmp, os.path.dirname(tree))
            except OSError:
                if not os.path.isdir(tree):
                    raise
                # Another pull of the same layer made it meanwhile: keep theirs.
        summary.lazy += 1
    record = ImageRecord(digest, config_desc.digest, tuple(ids),
                         tuple(d.digest for d in manifest.layers), str(config.get("created", "")),
                         sum(d.size for d in manifest.layers))  # fmt: skip
    if not store.has_blob(digest):
        store.add_blob(io.BytesIO(data), digest)
    with store.locked(), store.meta.write() as txn:
        store.meta.put_image(txn, record)
        if full is not None:
            store.meta.put_name(txn, full, digest)
    if sources is not None:  # a push to this registry mounts the blobs it never fetched
        sources.record([d.digest for d in manifest.blobs], ref.registry, ref.repository)
    return Image(record, store.names_of(digest)), summary
