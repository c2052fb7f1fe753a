"""Reading single files of an eStargz or zstd:chunked blob by byte ranges only (what a lazy
mount serves reads with): ``open_toc`` fetches and verifies the TOC, ``LayerReader`` gets a
file's chunks in one ``RangeSource.read_ranges`` call and checks each chunk's sha256 before
any byte of it is returned; a mismatch is ``CorruptChunk`` (OSError EIO), never data.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import zlib
from collections.abc import Sequence
from typing import Protocol

import zstandard

from unionfs.errors import UserError
from unionfs.store import estargz, zstdchunked
from unionfs.store.tarread import REGULAR, TarStream
from unionfs.store.toc import Chunk, LayerToc, TocEntry, parse_estargz, parse_zstd_chunked

TAIL = 64 << 10  # the first read of a blob's end: the footer, and often the whole TOC
MAX_TOC = 64 << 20  # a decompressed eStargz TOC larger than this is refused


class RangeSource(Protocol):
    """Byte ranges of one blob."""

    @property
    def size(self) -> int: ...

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of each ``(offset, length)``, in the order asked; OSError if any of
        them cannot be had in full."""
        ...


class CorruptChunk(OSError):
    """Fetched bytes that do not decompress to what the TOC says (EIO)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EIO, message)


class FileRangeSource:
    """A blob in a local file, read with pread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = os.stat(path).st_size
        self.requests = 0  # read_ranges calls, for tests and statistics

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        self.requests += 1
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            out = []
            for offset, length in ranges:
                data = os.pread(fd, length, offset)
                if len(data) != length:
                    raise OSError(errno.EIO, f"{self.path}: short read at {offset}")
                out.append(data)
            return out
        finally:
            os.close(fd)


def is_lazy(annotations: dict[str, str]) -> str | None:
    """The lazy format a layer descriptor's annotations announce, or None."""
    if estargz.TOC_DIGEST in annotations:
        return "estargz"
    if zstdchunked.checksum(annotations) is not None:
        return "zstd:chunked"
    return None


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _estargz_toc(source: RangeSource, digest: str) -> tuple[LayerToc, bytes, int]:
    size = source.size
    if size < estargz.FOOTER_SIZE:
        raise UserError("not an eStargz blob: shorter than its footer")
    start = max(0, size - TAIL)
    (tail,) = source.read_ranges([(start, size - start)])
    toc_offset = estargz.parse_footer(tail)
    toc_end = size - estargz.FOOTER_SIZE
    if not 0 <= toc_offset < toc_end:
        raise UserError("corrupt eStargz footer: the TOC offset is outside the blob")
    if toc_offset >= start:
        member = tail[toc_offset - start : toc_end - start]
    else:
        (member,) = source.read_ranges([(toc_offset, toc_end - toc_offset)])
    z = zlib.decompressobj(31)
    try:
        plain = z.decompress(member, MAX_TOC + 4 * 512)
    except zlib.error as exc:
        raise UserError(f"corrupt eStargz TOC: {exc}") from None
    if z.unconsumed_tail:
        raise UserError("eStargz TOC larger than 64 MiB")
    tar = TarStream(io.BytesIO(plain), None)
    entry = tar.next()
    if entry is None or entry.path != estargz.TOC_NAME.encode() or entry.type != REGULAR:
        raise UserError("corrupt eStargz TOC: its member does not start with stargz.index.json")
    data = b"".join(tar.data(entry))
    if _sha256(data) != digest:
        raise UserError(f"eStargz TOC does not match its digest {digest[:19]}")
    return parse_estargz(data, digest, toc_offset), data, toc_offset


def _zstd_toc(source: RangeSource, annotations: dict[str, str], digest: str
              ) -> tuple[LayerToc, bytes, int]:  # fmt: skip
    where = zstdchunked.position(annotations)
    if where is None:
        raise UserError("zstd:chunked layer without a manifest-position annotation")
    offset, length, plain = where
    if offset + length > source.size:
        raise UserError("corrupt zstd:chunked annotation: the TOC lies beyond the blob's end")
    (compressed,) = source.read_ranges([(offset, length)])
    if _sha256(compressed) != digest:
        raise UserError(f"zstd:chunked TOC does not match its digest {digest[:19]}")
    try:
        data = zstandard.ZstdDecompressor().decompress(compressed, max_output_size=plain)
    except zstandard.ZstdError as exc:
        raise UserError(f"corrupt zstd:chunked TOC: {exc}") from None
    return parse_zstd_chunked(data, digest), data, 0


def open_toc(source: RangeSource, annotations: dict[str, str]) -> LayerToc:
    """The verified TOC of the blob *source*, found as its descriptor's *annotations*
    say. UserError when the layer announces no TOC (pull it whole) or a TOC that does
    not match its digest."""
    return fetch_toc(source, annotations)[0]


def fetch_toc(source: RangeSource, annotations: dict[str, str]) -> tuple[LayerToc, bytes, int]:
    """``open_toc``, with the TOC's JSON as verified (what a lazy layer keeps, to parse
    again) and, for eStargz, where its gzip member starts (``toc.parse_estargz`` needs it)."""
    kind = is_lazy(annotations)
    if kind == "estargz":
        return _estargz_toc(source, annotations[estargz.TOC_DIGEST])
    if kind == "zstd:chunked":
        checksum = zstdchunked.checksum(annotations)
        assert checksum is not None
        return _zstd_toc(source, annotations, checksum)
    raise UserError("the layer has no TOC (neither eStargz nor zstd:chunked)")


def decompress_chunk(fmt: str, data: bytes, chunk: Chunk) -> bytes:
    """The chunk's bytes from its compressed range *data*, verified; CorruptChunk else."""
    want = chunk.skip + chunk.size
    try:
        if fmt == "estargz":
            out = bytearray()
            rest = data
            while len(out) < want and rest:
                z = zlib.decompressobj(31)
                out += z.decompress(rest, want - len(out))
                rest = z.unused_data if z.eof else b""
        else:
            reader = zstandard.ZstdDecompressor().stream_reader(
                io.BytesIO(data), read_across_frames=True
            )
            out = bytearray()
            while len(out) < want and (got := reader.read(want - len(out))):
                out += got
    except (zlib.error, zstandard.ZstdError) as exc:
        raise CorruptChunk(f"chunk at {chunk.offset}: {exc}") from None
    body = bytes(out[chunk.skip : want])
    if len(body) != chunk.size:
        raise CorruptChunk(f"chunk at {chunk.offset}: {len(body)} of {chunk.size} bytes")
    if _sha256(body) != chunk.digest:
        raise CorruptChunk(f"chunk at {chunk.offset} does not match its digest {chunk.digest[:19]}")
    return body


class LayerReader:
    """Files of one lazily pullable blob, read through *source* as *toc* locates them."""

    def __init__(self, source: RangeSource, toc: LayerToc) -> None:
        self.source = source
        self.toc = toc
        self._paths = toc.by_path()

    def lookup(self, path: bytes) -> TocEntry | None:
        return self._paths.get(path)

    def read_chunks(self, chunks: Sequence[Chunk]) -> list[bytes]:
        """Each chunk's bytes, verified; one ``read_ranges`` call for all of them."""
        raw = self.source.read_ranges([(c.offset, c.end - c.offset) for c in chunks])
        return [decompress_chunk(self.toc.format, r, c) for r, c in zip(raw, chunks, strict=True)]

    def read_file(self, entry: TocEntry) -> bytes:
        """The whole content of regular file *entry*, every chunk verified."""
        if entry.kind != "reg":
            raise OSError(errno.EINVAL, f"{entry.path!r} is not a regular file")
        data = b"".join(self.read_chunks(entry.chunks)) if entry.chunks else b""
        if len(data) != entry.size or (entry.digest and _sha256(data) != entry.digest):
            raise CorruptChunk(f"{entry.path!r}: its chunks do not make up the file")
        return data

    def read(self, entry: TocEntry, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset + length)`` of *entry*, fetching only the chunks that
        hold them (what a FUSE read needs)."""
        end = min(entry.size, offset + length)
        wanted = [c for c in entry.chunks
                  if offset < c.file_offset + c.size and c.file_offset < end]
        data = b"".join(self.read_chunks(wanted))
        base = wanted[0].file_offset if wanted else offset
        return data[offset - base : end - base]


__all__ = ["CorruptChunk", "FileRangeSource", "LayerReader", "RangeSource", "decompress_chunk",
           "fetch_toc", "is_lazy", "open_toc"]
