"""The layer store: blobs, extracted read-only layers, images. It knows no processes.

Modules: ``blobs`` (the content-addressed ``blobs/sha256`` dir), ``meta`` (the LMDB
metadata), ``images`` (``ImageStore``: layers, images, names), ``extraction`` (one blob
read into a layer tree), ``naming`` (which stored name a reference means), ``rmi`` (an
image removed, what it alone used collected), ``prune``, ``ociformat`` (manifests,
indexes, configs, layout readers), ``importer`` and ``exporter`` (import, save,
export-layer), ``layertar`` (the OCI layer tar codec, with ``tarread``, ``tarwrite``,
``memberattrs``, ``compress``, ``changes``), ``spellout`` (an upper's redirects spelled
out for commit), ``progress``. Containers on the store (create, mount, commit) and an
ordinary user's store live above it, in ``unionfs.containers``: the store imports no
runtime, fuse or cli.

The API the registry client uses (all on ``ImageStore(root)``; digests are ``sha256:<hex>``):
- ``blob_path(digest) -> str``: where a blob lives (``ROOT/blobs/sha256/<hex>``);
- ``has_blob(digest) -> bool``;
- ``add_blob(stream_or_path, expected_digest=None, progress=None) -> digest``: written to
  a temp name, verified against *expected_digest* (UserError on a mismatch), renamed in;
- ``image_manifest(ref) -> (manifest_digest, manifest_bytes)``: a stored image by name,
  digest or id; its config and layer blobs are then in ``blobs/`` too;
- ``add_image(manifest_digest, name) -> Image``: manifest, config and layer blobs already
  in ``blobs/``: verifies them, extracts the missing layers, records the image and names
  it, atomically (one LMDB transaction, under the store lock).
"""

from __future__ import annotations

from unionfs.store.images import Image, ImageStore
from unionfs.store.naming import normalize

__all__ = ["Image", "ImageStore", "normalize"]
