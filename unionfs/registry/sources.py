"""Where each blob is known to live: ``digest -> ["host/repo", ...]``, kept in a JSON file
beside the blobs, so a push can ask the registry to mount a blob from another repository
it already holds instead of uploading it again. A cache: losing it only costs uploads.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable


class BlobSources:
    """A JSON file of blob locations, read-modify-written under an flock."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _read(self) -> dict[str, list[str]]:
        try:
            with open(self.path, "rb") as f:
                data = json.load(f)
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def repos(self, digest: str, registry: str) -> list[str]:
        """Repositories on *registry* known to hold *digest*."""
        prefix = registry + "/"
        return [
            loc[len(prefix) :]
            for loc in self._read().get(digest, [])
            if isinstance(loc, str) and loc.startswith(prefix)
        ]

    def record(self, digests: Iterable[str], registry: str, repo: str) -> None:
        """Note that *registry*/*repo* holds each of *digests* (best effort)."""
        where = f"{registry}/{repo}"
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(self.path + ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                data = self._read()
                for d in digests:
                    locs = data.setdefault(d, [])
                    if where not in locs:
                        locs.append(where)
                        del locs[:-8]  # a few recent places are enough
                tmp = f"{self.path}.tmp-{os.getpid()}"
                with open(tmp, "w") as f:
                    json.dump(data, f)
                os.replace(tmp, self.path)
        except OSError:
            pass  # only a cache of mount sources
