"""``DirFdCache``: the LRU of ``O_PATH`` directory descriptors that ``safepath``'s layers
share, keyed by (layer id, path in the layer). It only keeps and closes descriptors:
it opens nothing and walks no path itself (``safepath.LayerDir`` does both).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator


class DirFdCache:
    """An LRU of ``O_PATH`` directory descriptors, keyed by (layer id, relative path).

    Invariant: every cached descriptor is open and owned by the cache, and ``_below``
    maps each (layer id, directory) to the cached paths strictly below it, so ``forget``
    costs what it drops, not the size of the cache (a rename used to scan all of it).
    Callers must not close a descriptor they got from it, and must call ``forget`` after
    renaming or removing a directory of a writable layer, or a cached descriptor would
    name the moved directory under its old path.
    """

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._fds: OrderedDict[tuple[int, bytes], int] = OrderedDict()
        self._below: dict[tuple[int, bytes], set[bytes]] = {}

    @property
    def size(self) -> int:
        """How many descriptors are cached."""
        return len(self._fds)

    def get(self, key: tuple[int, bytes]) -> int | None:
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
        return fd

    def put(self, key: tuple[int, bytes], fd: int) -> None:
        old = self._fds.pop(key, None)
        if old is not None:
            os.close(old)
        else:
            layer_id, path = key
            for above in _ancestors(path):
                self._below.setdefault((layer_id, above), set()).add(path)
        self._fds[key] = fd
        while len(self._fds) > self.capacity:
            self._drop(next(iter(self._fds)))

    def _drop(self, key: tuple[int, bytes]) -> None:
        os.close(self._fds.pop(key))
        layer_id, path = key
        for above in _ancestors(path):
            below = self._below[(layer_id, above)]
            below.discard(path)
            if not below:
                del self._below[(layer_id, above)]

    def forget(self, layer_id: int, path: bytes) -> None:
        """Drop *path* and everything below it (all of the layer for the root, b"")."""
        doomed = list(self._below.get((layer_id, path), ()))
        if (layer_id, path) in self._fds:
            doomed.append(path)
        for gone in doomed:
            self._drop((layer_id, gone))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._below.clear()


def _ancestors(path: bytes) -> Iterator[bytes]:
    """The directories strictly above *path*: b"", then b"a", b"a/b" for b"a/b/c"."""
    if not path:
        return
    yield b""
    cut = path.find(b"/")
    while cut != -1:
        yield path[:cut]
        cut = path.find(b"/", cut + 1)
