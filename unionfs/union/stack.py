"""Layers, the stack they form, and the resolved entries of the merged view.

A ``Stack`` is an ordered list of layers, topmost first: the upper (if any), then the lowers
as given in ``lowerdir=`` (leftmost on top). A ``Resolved`` names one merged entry: its
path, the stack indices of the layers it is made of, and the lstat of the topmost of them.
Resolved values are immutable; whoever changes a layer makes new ones.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from unionfs import layerfmt
from unionfs.safepath import DirFdCache, LayerDir, join


class Layer(Protocol):
    """What the rules need of a layer. ``None`` means "nothing there"; failures raise OSError."""

    root: str

    def lstat(self, path: bytes) -> os.stat_result | None: ...
    def scandir(self, path: bytes) -> Iterator[tuple[bytes, os.stat_result]]: ...
    def is_opaque(self, path: bytes) -> bool: ...
    def readlink(self, path: bytes) -> bytes: ...
    def open(self, path: bytes, flags: int, mode: int = 0) -> int: ...
    def getxattr(self, path: bytes, name: bytes) -> bytes | None: ...
    def listxattr(self, path: bytes) -> list[bytes]: ...
    def statvfs(self) -> os.statvfs_result: ...


class DirLayer(LayerDir):
    """A plain layer directory on disk, read through ``safepath``."""

    def is_opaque(self, path: bytes) -> bool:
        """Any of the three opaque forms marks directory *path* (which must exist)."""
        for xattr in layerfmt.OPAQUE_XATTRS:
            if layerfmt.is_opaque_value(self.dir_getxattr(path, xattr)):
                return True
        return self.lstat(join(path, layerfmt.OPAQUE_MARKER)) is not None


@dataclass(frozen=True, slots=True)
class Resolved:
    """One entry of the merged view.

    ``layers`` are stack indices, topmost first: one for a non-directory; for a directory,
    every layer whose same-named directory merges into it (down to the first opaque one).
    ``st`` is the lstat of the entry in ``layers[0]``.
    """

    path: bytes
    layers: tuple[int, ...]
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def top(self) -> int:
        return self.layers[0]

    @property
    def is_merged(self) -> bool:
        """A directory made of more than one layer (the kernel's OVL_TYPE_MERGE)."""
        return len(self.layers) > 1


class Stack:
    """The layers of one mount, topmost first.

    Invariant: ``layers[0]`` is the upper when ``has_upper``; lower layers are never written.
    """

    def __init__(self, layers: Sequence[Layer], has_upper: bool = False) -> None:
        if not layers:
            raise ValueError("a stack needs at least one layer")
        self.layers = list(layers)
        self.has_upper = has_upper

    @classmethod
    def from_dirs(
        cls, lowers: Sequence[str], upper: str | None = None, cache: DirFdCache | None = None
    ) -> Stack:
        cache = cache or DirFdCache()
        roots = ([upper] if upper else []) + list(lowers)
        layers = [DirLayer(root, cache, i) for i, root in enumerate(roots)]
        return cls(layers, has_upper=upper is not None)

    def close(self) -> None:
        for layer in self.layers:
            close = getattr(layer, "close", None)
            if close is not None:
                close()

    def root(self) -> Resolved:
        """The merged root: the roots of all layers (the kernel ignores opaque on the root)."""
        st = self.layers[0].lstat(b"")
        assert st is not None
        return Resolved(b"", tuple(range(len(self.layers))), st)
