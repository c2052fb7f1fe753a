"""The chunk cache shared by every lazy layer of a store: a chunk's uncompressed bytes in a
file named by their sha256 (``lazy/chunks/sha256/<hex>``), written to a temp and renamed
in, so a file there is whole. Only bytes already checked against their digest are put;
a process checks a cache file again the first time it reads it (a damaged one is dropped
and fetched anew, never served), then reads slices of it without hashing it each time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading

from unionfs.imageformat import check_digest


class ChunkCache:
    def __init__(self, directory: str) -> None:
        self.dir = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._checked: set[str] = set()  # digests whose file this process has hashed

    def _path(self, digest: str) -> str:
        return os.path.join(self.dir, check_digest(digest, "chunk"))

    def has(self, digest: str) -> bool:
        return os.path.exists(self._path(digest))

    def get(self, digest: str) -> bytes | None:
        """The chunk's bytes, or None (absent, or damaged: then it is removed)."""
        path = self._path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return None
        self._checked.add(digest)
        return data

    def read(self, digest: str, offset: int, length: int) -> bytes | None:
        """Bytes ``[offset, offset + length)`` of the chunk, or None (as ``get``)."""
        if digest not in self._checked:
            data = self.get(digest)
            return None if data is None else data[offset : offset + length]
        try:
            fd = os.open(self._path(digest), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._checked.discard(digest)
            return None
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def put(self, digest: str, data: bytes) -> None:
        """Keep *data*, already verified to hash to *digest*."""
        path = self._path(digest)
        if os.path.exists(path):
            return
        tmp = f"{path}.{os.getpid()}.{threading.get_ident():x}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
        self._checked.add(digest)
