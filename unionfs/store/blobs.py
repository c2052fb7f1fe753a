"""The blob directory ``ROOT/blobs/sha256/<hex>``: content-addressed files, OCI layout style.

A blob is written to a temp (``scratch``) in the same directory, hashed as it is written,
and renamed in only when its sha256 matches what the caller expected; so a blob that exists is
complete and verified. Blobs are never modified; removing one is the caller's decision
(under the store lock). Digests are checked (``imageformat.check_digest``) before they
become paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import typing
from collections.abc import Callable, Iterator

from unionfs.errors import UserError
from unionfs.imageformat import check_digest
from unionfs.store import scratch

CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingReader(io.RawIOBase):
    """A raw reader that hashes and counts every byte read through it."""

    def __init__(self, raw: typing.BinaryIO, progress: Callable[[int], None] | None = None):
        super().__init__()
        self._raw = raw
        self.hash = hashlib.sha256()
        self.count = 0
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: typing.Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.hash.update(data)
        self.count += n
        if self._progress is not None and n:
            self._progress(n)
        return n

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class HashingWriter(io.RawIOBase):
    """A writer to a file that hashes and counts every byte written."""

    def __init__(self, out: typing.BinaryIO) -> None:
        super().__init__()
        self._out = out
        self.hash = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: typing.Any) -> int:
        view = memoryview(data).cast("B")
        self._out.write(view)
        self.hash.update(view)
        self.count += len(view)
        return len(view)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class BlobDir:
    """``ROOT/blobs/sha256``. Invariant: every ``<hex>`` file in it hashes to ``<hex>``."""

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "blobs", "sha256")

    def path(self, digest: str) -> str:
        return os.path.join(self.dir, check_digest(digest))

    def has(self, digest: str) -> bool:
        return os.path.isfile(self.path(digest))

    def size(self, digest: str) -> int:
        return os.stat(self.path(digest)).st_size

    def read(self, digest: str, limit: int = 16 << 20) -> bytes:
        """A small blob (manifest, config), re-verified as it is read."""
        path = self.path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise UserError(f"blob {digest} is missing from the store") from None
        if len(data) > limit:
            raise UserError(f"blob {digest} is larger than {limit} bytes")
        if sha256_bytes(data) != digest:
            raise UserError(f"blob {digest} in the store does not match its digest")
        return data

    @contextlib.contextmanager
    def writer(self, expected: str | None = None) -> Iterator[HashingWriter]:
        """Write a new blob: yields a hashing writer on a temp file; on success the file is
        renamed to its digest (which must equal *expected* when given). Nothing is left on
        failure."""
        if expected is not None:
            check_digest(expected)
        os.makedirs(self.dir, exist_ok=True)
        with scratch.temp_file(self.dir) as (tmp, f):
            w = HashingWriter(f)
            yield w
            f.flush()
            os.fsync(f.fileno())
            if expected is not None and w.digest != expected:
                raise UserError(f"digest mismatch: expected {expected}, content is {w.digest}")
            os.chmod(tmp, 0o444)
            os.replace(tmp, self.path(w.digest))

    def add_stream(self, stream: typing.BinaryIO, expected: str | None = None,
                   progress: Callable[[int], None] | None = None) -> str:  # fmt: skip
        """Copy *stream* to a blob; returns its digest. UserError on a mismatch."""
        if expected is not None and self.has(expected):
            return expected
        with self.writer(expected) as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        return w.digest

    def add_bytes(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        if not self.has(digest):
            with self.writer(digest) as w:
                w.write(data)
        return digest

    def add_path(self, path: str, expected: str | None = None) -> str:
        with open(path, "rb") as f:
            return self.add_stream(typing.cast(typing.BinaryIO, f), expected)

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))

    def copy_to(self, digest: str, dest: str) -> None:
        """*dest* gets a copy of the blob (temp + rename). Never a hard link: a change made
        to the copy must not reach the store."""
        tmp = f"{dest}.tmp-{os.getpid()}"
        shutil.copyfile(self.path(digest), tmp)
        os.replace(tmp, dest)
