"""The seam to lazily pulled layers (``unionfs.lazy`` serves it; fuse never imports it):
a lower file whose data has not arrived yet is read through ``LazyData`` instead of its
placeholder, and made whole before anything copies it (copy-up, copy_file_range, lseek).
Its calls block on the network: handlers run them in a thread.
"""

from __future__ import annotations

from typing import Protocol

from unionfs.union.stack import Layer


class LazyData(Protocol):
    """Files of lazy layer trees, by the tree's directory (as the stack's layer was
    opened) and the path in it. ``read`` and ``fill`` raise OSError EIO when the data
    cannot be had or does not match its digest: never wrong bytes."""

    def pending(self, root: str, path: bytes) -> bool: ...
    def read(self, root: str, path: bytes, offset: int, size: int) -> bytes: ...
    def fill(self, root: str, path: bytes) -> None: ...


def where(layer: Layer, path: bytes) -> tuple[str, bytes] | None:
    """(directory, path) of the layer directory holding *path*'s data in *layer* (a
    directory, or the indexed lowers: then the one of them that holds it)."""
    layer_of = getattr(layer, "layer_of", None)
    target = layer_of(path) if layer_of is not None else layer
    root = getattr(target, "root", None)
    return (root, path) if isinstance(root, str) else None
