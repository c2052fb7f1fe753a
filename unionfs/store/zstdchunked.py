"""Writing a zstd:chunked layer blob (containers/storage pkg/chunked) from a plain tar
stream, and finding its TOC from a descriptor's annotations. Pure: streams in, bytes out.

The tar stream inside is the input's byte for byte, so the diff_id does not change; the
TOC, tar-split and footer ride in zstd skippable frames (see ``write_zstd_chunked``).
"""

from __future__ import annotations

import hashlib
import json
import struct
import typing
from collections.abc import Callable

import zstandard

from unionfs.errors import UserError
from unionfs.imageformat import LAYER_ZSTD
from unionfs.store.compress import HashingSink
from unionfs.store.estargz import TocBlob
from unionfs.store.tarpieces import TarPieces, exact_chunks
from unionfs.store.tarread import BLOCKDEV, CHAR, DIRECTORY, FIFO, HARDLINK, REGULAR, SYMLINK
from unionfs.store.tarsplit import Packer, crc64
from unionfs.store.toc import format_time, name_text, xattrs_text

MANIFEST_CHECKSUM = "io.github.containers.zstd-chunked.manifest-checksum"
MANIFEST_POSITION = "io.github.containers.zstd-chunked.manifest-position"
TARSPLIT_POSITION = "io.github.containers.zstd-chunked.tarsplit-position"
OLD_MANIFEST_CHECKSUM = "io.containers.zstd-chunked.manifest-checksum"
OLD_MANIFEST_POSITION = "io.containers.zstd-chunked.manifest-position"
SKIPPABLE_MAGIC = b"\x50\x2a\x4d\x18"
FOOTER_MAGIC = b"GNUlInUx"  # 64-byte footer (with tar-split)
OLD_FOOTER_MAGIC = b"GnUlInUx"  # 40-byte footer of the first version
FOOTER_SIZE = 64
MANIFEST_TYPE_CRFS = 1
MAX_MANIFEST = 50 << 20  # containers/storage refuses larger TOCs
DEFAULT_CHUNK = 4 << 20
_TYPES = {REGULAR: "reg", HARDLINK: "hardlink", SYMLINK: "symlink", CHAR: "char",
          BLOCKDEV: "block", DIRECTORY: "dir", FIFO: "fifo"}  # fmt: skip


def skippable(data: bytes) -> bytes:
    return SKIPPABLE_MAGIC + struct.pack("<I", len(data)) + data


def toc_entry(member: typing.Any) -> dict[str, object]:
    """A FileMetadata entry as containers/storage's ``NewFileMetadata`` fills it from a Go
    tar header (zero fields left out)."""
    entry: dict[str, object] = {"type": _TYPES[member.type], "name": name_text(member.name)}
    if member.type in (SYMLINK, HARDLINK):
        entry["linkName"] = name_text(member.linkname)
    for key, value in (("mode", member.mode), ("size", member.size), ("uid", member.uid),
                       ("gid", member.gid)):  # fmt: skip
        if value:
            entry[key] = value
    entry["modtime"] = format_time(member.mtime_ns, nanos=True)
    for key, value in (("devMajor", member.devmajor), ("devMinor", member.devminor)):
        if value:
            entry[key] = value
    if member.xattrs:
        entry["xattrs"] = xattrs_text(member.xattrs)
    return entry


def _compact(value: object) -> bytes:
    """Go's json.Marshal: no spaces, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.encode()


class _Frames:
    """zstd frames written one after another to *sink*."""

    def __init__(self, sink: HashingSink, level: int) -> None:
        self._sink = sink
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._obj: typing.Any = None
        self.plain = hashlib.sha256()

    @property
    def offset(self) -> int:
        return self._sink.size

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._obj is None:
            self._obj = self._cctx.compressobj()
        self._sink.write(self._obj.compress(data))
        self.plain.update(data)

    def close(self) -> None:
        if self._obj is not None:
            self._sink.write(self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))
            self._obj = None


def footer(offset: int, length: int, plain: int, ts_offset: int, ts_length: int,
           ts_plain: int) -> bytes:  # fmt: skip
    return struct.pack("<7Q", offset, length, plain, MANIFEST_TYPE_CRFS, ts_offset, ts_length,
                       ts_plain) + FOOTER_MAGIC  # fmt: skip


def position(annotations: dict[str, str]) -> tuple[int, int, int] | None:
    """(offset, compressed length, uncompressed length) of the TOC from a descriptor's
    annotations (either naming), or None when it has none; UserError when malformed."""
    text = annotations.get(MANIFEST_POSITION) or annotations.get(OLD_MANIFEST_POSITION)
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise UserError(f"corrupt zstd:chunked annotation: manifest position {text[:80]!r}")
    offset, length, plain, kind = (int(p) for p in parts)
    if kind != MANIFEST_TYPE_CRFS:
        raise UserError(f"zstd:chunked manifest of unknown type {kind}")
    if length > MAX_MANIFEST or plain > MAX_MANIFEST:
        raise UserError("zstd:chunked manifest larger than 50 MiB")
    return offset, length, plain


def checksum(annotations: dict[str, str]) -> str | None:
    return annotations.get(MANIFEST_CHECKSUM) or annotations.get(OLD_MANIFEST_CHECKSUM)


def write_zstd_chunked(src: typing.BinaryIO, out: typing.BinaryIO, *,
                       chunk_size: int = DEFAULT_CHUNK, level: int = 3,
                       progress: Callable[[int], None] | None = None) -> TocBlob:  # fmt: skip
    """Write the plain tar stream *src* as a zstd:chunked blob to *out*.

    zstd frames: tar headers run on in one frame until a regular file's data starts; each
    chunk of data (``chunk_size``) is a frame of its own, and the frame after the last
    starts with the padding and the next headers. Then three skippable frames, which every
    decoder skips: the TOC ("manifest", zstd-compressed JSON), the tar-split metadata
    (``tarsplit``) and a 64-byte footer. The annotations say where the TOC and tar-split
    are and give the sha256 of the compressed TOC (``io.github.containers.zstd-chunked.*``);
    the names containers/storage used before tar-split (``io.containers.zstd-chunked.*``,
    which Debian 12's podman 4.3 and skopeo 1.9 read) name the same TOC.
    """
    if chunk_size <= 0:
        raise UserError("the chunk size must be positive")
    sink = HashingSink(out)
    frames = _Frames(sink, level)
    pieces = TarPieces(src)
    packer = Packer()
    entries: list[dict[str, object]] = []
    for raw, member in pieces:
        if member is None:
            frames.write(raw)
            packer.segment(raw[: pieces.eoa])
            packer.segment(raw[pieces.eoa :])  # what follows the blocks (Go's "remainder")
            break
        frames.write(raw)
        packer.segment(raw)
        entry = toc_entry(member)
        entries.append(entry)
        crc = None
        if member.type == REGULAR and member.size:
            whole, check = hashlib.sha256(), crc64()
            chunks: list[dict[str, object]] = []
            done = 0
            for chunk in exact_chunks(pieces.data(member), chunk_size):
                frames.close()
                digest = "sha256:" + hashlib.sha256(chunk).hexdigest()
                chunks.append({"type": "chunk", "name": entry["name"], "offset": frames.offset,
                               "chunkSize": len(chunk), "chunkOffset": done,
                               "chunkDigest": digest})  # fmt: skip
                if not done:
                    del chunks[-1]["chunkOffset"]
                frames.write(chunk)
                whole.update(chunk)
                check.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            frames.close()
            if done != member.size:
                raise UserError(f"{entry['name']}: the archive holds {done} of {member.size} bytes")
            crc = check.digest()
            entry["digest"] = "sha256:" + whole.hexdigest()
            entry["offset"] = chunks[0]["offset"]
            entry["endOffset"] = frames.offset
            if len(chunks) == 1:
                entry["chunkDigest"] = chunks[0]["chunkDigest"]
            else:
                for key in ("chunkSize", "chunkDigest"):
                    entry[key] = chunks[0][key]
                entries.extend(chunks[1:])
        packer.file(member.name, member.size, crc)
    frames.close()
    payload_end = frames.offset
    tarsplit_plain = packer.data()
    tarsplit = zstandard.ZstdCompressor(level=level).compress(tarsplit_plain)
    tarsplit_digest = "sha256:" + hashlib.sha256(tarsplit).hexdigest()
    manifest = _compact({"version": 1, "entries": entries, "tarSplitDigest": tarsplit_digest})
    compressed = zstandard.ZstdCompressor(level=level).compress(manifest)
    manifest_offset = payload_end + 8
    tarsplit_offset = manifest_offset + len(compressed) + 8
    sink.write(skippable(compressed))
    sink.write(skippable(tarsplit))
    sink.write(skippable(footer(manifest_offset, len(compressed), len(manifest), tarsplit_offset,
                                len(tarsplit), len(tarsplit_plain))))  # fmt: skip
    toc_digest = "sha256:" + hashlib.sha256(compressed).hexdigest()
    where = f"{manifest_offset}:{len(compressed)}:{len(manifest)}:{MANIFEST_TYPE_CRFS}"
    annotations = {
        MANIFEST_CHECKSUM: toc_digest,
        MANIFEST_POSITION: where,
        TARSPLIT_POSITION: f"{tarsplit_offset}:{len(tarsplit)}:{len(tarsplit_plain)}",
        OLD_MANIFEST_CHECKSUM: toc_digest,
        OLD_MANIFEST_POSITION: where,
    }
    diff_id = "sha256:" + frames.plain.hexdigest()
    if diff_id != pieces.diff_id:
        raise AssertionError("the zstd:chunked stream differs from its input")  # a bug
    return TocBlob(diff_id, sink.digest(), sink.size, LAYER_ZSTD, annotations, toc_digest)
