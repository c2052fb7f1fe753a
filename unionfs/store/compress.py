"""Layer blob compression: which one a blob uses (by its magic bytes), reading it back as a
plain tar stream, and the writers that compress a tar while hashing both sides.

Every failure of a decompressor while reading (a truncated gzip, a corrupt zstd frame)
surfaces as one ``UserError`` line, never as zlib's or zstandard's own exception.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import typing
import zlib
from collections.abc import Callable

import zstandard
from zlib_ng import gzip_ng, zlib_ng

from unionfs.errors import UserError
from unionfs.store.pgzip import ParallelGzip

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_OTHER_MAGIC = {
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x89PNG": "PNG",
    b"PK\x03\x04": "zip",
}
MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
BLOCK = 512
# What the decoders raise on a damaged stream (zlib-ng's inflate has its own error class).
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, gzip.BadGzipFile, zlib.error, typing.cast(type[BaseException], zlib_ng.error),
    zstandard.ZstdError,
)  # fmt: skip
_CHUNK = 1 << 20


def tar_header_checksum_ok(block: bytes) -> bool:
    """Whether a 512-byte block holds a valid tar header checksum (unsigned or signed)."""
    if len(block) < BLOCK:
        return False
    field = block[148:156].split(b"\0", 1)[0].strip()
    try:
        stored = int(field, 8)
    except ValueError:
        return False
    blanked = block[:148] + b" " * 8 + block[156:BLOCK]
    unsigned = sum(blanked)
    if stored == unsigned:
        return True
    return stored == unsigned - 256 * sum(1 for b in blanked if b > 127)  # old signed sums


class _Prefixed(io.RawIOBase):
    """A reader giving *head* first, then the rest of *raw* (for a peek on a pipe)."""

    def __init__(self, head: bytes, raw: typing.BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: typing.Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._raw.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Decompressed(io.RawIOBase):
    """The uncompressed stream of a layer; decoder errors become one-line UserErrors."""

    def __init__(self, inner: typing.BinaryIO, kind: str, owned: typing.BinaryIO | None) -> None:
        self._inner = inner
        self.kind = kind
        self._owned = owned

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: typing.Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._inner.read(len(view))
        except _DECODER_ERRORS as exc:
            raise UserError(f"corrupt {self.kind} layer: {exc or 'truncated'}") from None
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                if self._owned is not None:
                    self._owned.close()
        super().close()


class _ZstdReader(io.RawIOBase):
    """zstd frames one after another, decoded in small input steps (a bomb of zeros
    cannot fill memory: a step of 4 KiB yields at most ~128 MiB); unlike zstandard's
    stream_reader it notices a stream cut inside a frame."""

    _STEP = 4096
    _WANT = 1 << 18

    def __init__(self, src: typing.BinaryIO) -> None:
        self._src = src
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._pending = memoryview(b"")  # compressed bytes not fed yet
        self._out = bytearray()
        self._in_frame = False
        self._eof = False

    def readable(self) -> bool:
        return True

    def _feed(self) -> None:
        if not self._pending:
            self._pending = memoryview(self._src.read(_CHUNK))
            if not self._pending:
                if self._in_frame:
                    raise EOFError("the stream ends inside a zstd frame (truncated)")
                self._eof = True
                return
        step = bytes(self._pending[: self._STEP])
        self._pending = self._pending[self._STEP :]
        while step:
            if self._obj.eof:
                self._obj = self._dctx.decompressobj()
            self._in_frame = True
            self._out += self._obj.decompress(step)
            step = b""
            if self._obj.eof:
                self._in_frame = False
                step = self._obj.unused_data

    def readinto(self, buffer: typing.Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._WANT)
        while len(self._out) < want and not self._eof:
            self._feed()
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        del self._out[:n]
        return n


def _peek(raw: typing.BinaryIO, n: int) -> tuple[bytes, typing.BinaryIO]:
    """The first *n* bytes of *raw* (fewer at its end) and a reader still giving them."""
    chunks = []
    got = 0
    while got < n:
        data = raw.read(n - got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    head = b"".join(chunks)
    return head, typing.cast(typing.BinaryIO, io.BufferedReader(_Prefixed(head, raw), _CHUNK))


def detect(head: bytes) -> str:
    """``gzip``, ``zstd`` or ``none`` (a plain tar) for a blob starting with *head*
    (at least 512 bytes of it where there are); UserError for anything else."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if not head:
        raise UserError("not a layer: the file is empty")
    for magic, name in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise UserError(f"not a layer: {name} data (layers are tar, tar+gzip or tar+zstd)")
    block = head[:BLOCK]
    if block[257:262] == b"ustar" or tar_header_checksum_ok(block):
        return "none"
    if len(block) == BLOCK and not block.strip(b"\0"):
        return "none"  # an empty tar: only the end-of-archive blocks
    raise UserError("not a layer: neither a tar archive nor gzip or zstd data")


def open_layer(path_or_file: str | typing.BinaryIO) -> typing.BinaryIO:
    """A reader of the plain tar stream in a layer blob: gzip, zstd or an uncompressed tar,
    told apart by magic bytes. A path is opened (and closed with the reader); a file object
    is read from where it stands and left open. UserError for anything that is not a layer."""
    owned: typing.BinaryIO | None = None
    if isinstance(path_or_file, str):
        try:
            owned = typing.cast(typing.BinaryIO, open(path_or_file, "rb"))  # noqa: SIM115
        except OSError as exc:
            raise UserError(f"cannot open layer {path_or_file}: {exc.strerror}") from None
        raw: typing.BinaryIO = owned
    else:
        raw = path_or_file
    try:
        head, stream = _peek(raw, BLOCK)
        kind = detect(head)
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    inner: typing.BinaryIO
    if kind == "gzip":
        # zlib-ng inflates ~2x faster than zlib: the same stream, its own error class
        reader = gzip_ng.GzipFile(fileobj=stream, mode="rb")  # type: ignore[no-untyped-call]
        inner = typing.cast(typing.BinaryIO, reader)
    elif kind == "zstd":
        inner = typing.cast(typing.BinaryIO, _ZstdReader(stream))
    else:
        inner = stream
    return typing.cast(
        typing.BinaryIO, io.BufferedReader(_Decompressed(inner, kind, owned), _CHUNK)
    )


class HashingSink:
    """A write-only byte sink that hashes (sha256) and counts what passes to *out*."""

    def __init__(self, out: typing.BinaryIO | None = None) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        n = len(data)
        self.size += n
        if self._out is not None:
            self._out.write(data)
        return n

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class Compressor:
    """A tar stream in, a compressed blob out to *out*; both sides hashed in one pass.

    ``write`` takes the uncompressed bytes (passed on to *tee* too, where given);
    ``finish`` ends the compressed stream and
    returns (diff_id, digest, compressed size). gzip is written the reproducible way: no
    file name, mtime 0, one fixed level, blocks independent of the thread count
    (``pgzip``); zstd uses one thread and no content size.
    """

    def __init__(self, out: typing.BinaryIO, compression: str,
                 progress: Callable[[int], None] | None = None,
                 tee: Callable[[bytes], None] | None = None) -> None:  # fmt: skip
        if compression not in MEDIA_TYPES:
            raise UserError(f"unknown compression {compression!r} (gzip, zstd or none)")
        self.media_type = MEDIA_TYPES[compression]
        self._plain = HashingSink()
        self._blob = HashingSink(out)
        self._progress = progress
        self._tee = tee  # also given every uncompressed byte, in order
        self._encoder: typing.Any
        if compression == "gzip":
            # on every core (pigz's way), ISA-L where installed: one thread of zlib made
            # commit 6-9x podman's, zlib-ng at level 6 on two threads still 2.6x
            self._encoder = ParallelGzip(typing.cast(typing.BinaryIO, self._blob))
        elif compression == "zstd":
            cctx = zstandard.ZstdCompressor(level=3, write_content_size=False, threads=0)
            self._encoder = cctx.stream_writer(
                typing.cast(typing.IO[bytes], self._blob), closefd=False
            )
        else:
            self._encoder = self._blob

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = self._plain.write(data)
        self._encoder.write(data)
        if self._tee is not None:
            self._tee(data if isinstance(data, bytes) else bytes(data))
        if self._progress is not None and n:
            self._progress(n)
        return n

    def tell(self) -> int:
        return self._plain.size

    def flush(self) -> None:
        pass

    def finish(self) -> tuple[str, str, int]:
        if self._encoder is not self._blob:
            self._encoder.close()
        self._blob.flush()
        return self._plain.digest(), self._blob.digest(), self._blob.size
