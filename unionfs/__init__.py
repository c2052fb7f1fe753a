"""unionfs: a union / copy-on-write filesystem in userspace, with overlayfs semantics.

Layering (each arrow an import; nothing imports upward, tests/test_layering.py enforces it):
``cli`` -> (``runtime``, ``fuse``, ``index``) -> ``union`` -> (``layerfmt``, ``safepath``,
``idmap``, ``errors``). ``union`` holds the overlay rules and imports no pyfuse3, trio or lmdb;
``index`` imports ``union`` (its stack tables are computed by the union rules, so the index
is a cache of them) and uses lmdb, as ``store`` does for its metadata (``store``: layers,
images, commit; beside ``runtime``, whose container state dirs and mounts it uses, and
above ``union``, whose ``flatten`` spells out redirects for commit); ``registry`` speaks
the OCI distribution protocol and imports only ``errors`` and ``imageformat`` (the OCI
manifest and config formats, which ``store`` parses with too; the CLI hands it the store);
``fuse`` is the protocol edge and the only package that raises ``pyfuse3.FUSEError``;
``runtime`` drives mounts through the CLI and never imports ``fuse``; ``safepath`` is the
only place that touches layer paths.
"""

__version__ = "0.1.0"
