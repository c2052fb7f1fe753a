"""Digests: parse ``sha256:<hex>``, and a reader that verifies a stream while it is read.

``VerifyingReader`` raises ``DigestMismatch`` at the end of the stream (before returning
the final empty read), so a consumer that renames its temp file only after reading to the
end never makes a bad blob visible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from unionfs.errors import UserError

CHUNK = 1 << 20


class DigestMismatch(UserError):
    """Received bytes do not hash to the digest they were asked for by."""



def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short(digest: str) -> str:
    """``sha256:0123456789ab`` for messages."""
    return digest[:19]


class VerifyingReader:
    """A ``read(n)`` file over byte chunks that checks size and sha256 at the end."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        expected: str,
        size: int | None,
        *,
        what: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self._chunks = chunks
        self._expected = expected
        self._size = size
        self._what = what
        self._progress = progress
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._done = False
        self.count = 0

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf += chunk
                return True
        return False

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        while (n < 0 or len(self._buf) < n) and self._fill():
            pass
        take = len(self._buf) if n < 0 else min(n, len(self._buf))
        data = bytes(self._buf[:take])
        del self._buf[:take]
        if data:
            self._hash.update(data)
            self.count += len(data)
            if self._size is not None and self.count > self._size:
                raise DigestMismatch(
                    f"{self._what} is longer than the {self._size} bytes announced"
                )
            if self._progress is not None:
                self._progress(len(data))
            return data
        self._done = True
        self.check()
        return b""

    def check(self) -> None:
        """Raise unless everything was read and it matched."""
        if self._size is not None and self.count != self._size:
            raise DigestMismatch(
                f"{self._what} was cut short: {self.count} of {self._size} bytes received"
            )
        got = "sha256:" + self._hash.hexdigest()
        if got != self._expected:
            raise DigestMismatch(f"{self._what} does not match its digest (received {short(got)})")
