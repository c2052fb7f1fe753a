"""The blobs of lazily pulled layers, for what needs them whole (a push to another
registry, a push that re-encodes, an archive): fetched from where the layer was pulled,
each verified against its digest as the store takes it in. A push to the registry the
layer came from needs none of this: it mounts the blob from the repository it was pulled
from (``pull --lazy`` records it in the store's blob sources).
"""

from __future__ import annotations

import os
import typing

from unionfs.imagename import parse_reference
from unionfs.lazy import layout
from unionfs.registry.transfer import connect
from unionfs.store.images import Image, ImageStore


def missing(store: ImageStore, image: Image) -> list[tuple[str, layout.LazyRecord]]:
    """(blob, record) of each layer of *image* pulled lazily whose blob is not here."""
    out = []
    for blob in dict.fromkeys(image.record.blobs):
        tree = store.lazy_tree(blob)
        if not store.has_blob(blob) and os.path.isdir(tree):
            rec, _toc = layout.load(os.path.dirname(tree))
            out.append((blob, rec))
    return out


def fetch_missing(store: ImageStore, image: Image, *, unless_registry: str | None = None) -> int:
    """Fetch the blobs ``missing`` lists (but not those from *unless_registry*: a push
    there mounts them); how many were fetched."""
    fetched = 0
    for blob, rec in missing(store, image):
        ref = parse_reference(rec.ref)
        if ref.registry == unless_registry:
            continue
        with connect(ref, tls_verify=rec.tls_verify, authfile=rec.authfile) as client:

            def consume(reader: typing.BinaryIO, digest: str = blob) -> None:
                store.add_blob(reader, digest)

            client.fetch_blob(ref.repository, blob, rec.size, consume)
        fetched += 1
    return fetched
