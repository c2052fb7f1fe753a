"""The chunk cache shared by every lazy layer of a store: a chunk's uncompressed bytes in a
file named by their sha256 (``lazy/chunks/sha256/<hex>``), written to a temp and renamed
in, so a file there is whole. Only bytes already checked against their digest are put;
a read checks them again (a damaged cache file is dropped and fetched anew, never served).
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from unionfs.imageformat import check_digest


class ChunkCache:
    def __init__(self, directory: str) -> None:
        self.dir = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def _path(self, digest: str) -> str:
        return os.path.join(self.dir, check_digest(digest, "chunk")[7:])

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
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Keep *data*, already verified to hash to *digest*."""
        path = self._path(digest)
        if os.path.exists(path):
            return
        tmp = f"{path}.{os.getpid()}.{id(data):x}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
