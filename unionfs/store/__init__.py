"""The layer store: blobs, extracted read-only layers, images, and containers on them.

Modules: ``blobs`` (the content-addressed ``blobs/sha256`` dir), ``meta`` (the LMDB
metadata), ``images`` (``Store``: layers, images, names, rmi), ``ociformat`` (manifests,
indexes, configs, layout readers), ``importer`` and ``exporter`` (import, save),
``containers`` (create, mount, diff, commit), ``layertar`` (the OCI layer tar codec, with
``tarread``, ``tarwrite``, ``compress``, ``changes``), ``progress``, ``userstore`` (an
ordinary user's store: commands run in the user's namespace).
The store imports ``union`` (marker probing), ``safepath`` and ``runtime.state``,
``runtime.rootfs`` (containers are the runtime's state dirs) and ``runtime.userns``;
nothing below imports it.

The API the registry client uses (all on ``Store(root)``; digests are ``sha256:<hex>``):
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

from unionfs.store.images import Image, Store, normalize

__all__ = ["Image", "Store", "normalize"]
