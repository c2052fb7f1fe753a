"""Read-only questions needing only a store's metadata (which names and id each image has,
for ``ps``, ``inspect``, ``mount``): ``metadata`` never writes, unlike opening an
``ImageStore``, and is None for a store that does not exist. LMDB allows one open
environment per process: a command that has the store open passes ``store.meta``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from unionfs.store.meta import Meta


@contextlib.contextmanager
def metadata(root: str) -> Iterator[Meta | None]:
    """The metadata of the store at *root*, or None when there is none."""
    if not os.path.isdir(os.path.join(root, "meta")):
        yield None
        return
    meta = Meta(root)
    try:
        yield meta
    finally:
        meta.close()


def names_by_image(meta: Meta | None) -> dict[str, tuple[str, ...]]:
    """Manifest digest -> the image's names (sorted)."""
    if meta is None:
        return {}
    found: dict[str, list[str]] = {}
    for name, manifest in meta.names().items():
        found.setdefault(manifest, []).append(name)
    return {rec.manifest: tuple(sorted(found.get(rec.manifest, ()))) for rec in meta.all_images()}


def image_ids(meta: Meta | None) -> dict[str, str]:
    """Manifest digest -> image id (the config digest's hex)."""
    return {} if meta is None else {rec.manifest: rec.id for rec in meta.all_images()}
