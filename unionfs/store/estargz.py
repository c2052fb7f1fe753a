"""Writing an eStargz layer blob (containerd/stargz-snapshotter docs/estargz.md) from a
plain tar stream, and reading its 51-byte footer. Pure: streams in, bytes out.

The input tar is kept byte for byte; the landmark and the TOC come after its end-of-archive
blocks (see ``write_estargz``), so tar readers extract exactly the input's tree.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tarfile
import typing
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.imageformat import LAYER_GZIP
from unionfs.store.compress import BLOCK, HashingSink
from unionfs.store.tarpieces import TarPieces, exact_chunks
from unionfs.store.tarread import BLOCKDEV, CHAR, DIRECTORY, FIFO, HARDLINK, REGULAR, SYMLINK
from unionfs.store.toc import NO_PREFETCH_LANDMARK, format_time, name_text, xattrs_text

TOC_NAME = "stargz.index.json"
FOOTER_SIZE = 51
TOC_DIGEST = "containerd.io/snapshot/stargz/toc.digest"
UNCOMPRESSED_SIZE = "io.containers.estargz.uncompressed-size"
DEFAULT_CHUNK = 4 << 20  # the reference writer's default
_TYPES = {REGULAR: "reg", HARDLINK: "hardlink", SYMLINK: "symlink", CHAR: "char",
          BLOCKDEV: "block", DIRECTORY: "dir", FIFO: "fifo"}  # fmt: skip
LANDMARK_DATA = b"\x0f"


@dataclass(frozen=True, slots=True)
class TocBlob:
    """A layer blob written with a TOC: what the manifest's descriptor needs."""

    diff_id: str  # sha256 of the decompressed stream
    digest: str  # sha256 of the blob
    size: int
    media_type: str
    annotations: dict[str, str]
    toc_digest: str


def footer(toc_offset: int) -> bytes:
    """The 51 bytes: an empty gzip member whose Extra field holds the TOC's offset."""
    subfield = b"%016xSTARGZ" % toc_offset
    extra = b"SG" + struct.pack("<H", len(subfield)) + subfield
    header = b"\x1f\x8b\x08\x04" + b"\0\0\0\0" + b"\x00\xff" + struct.pack("<H", len(extra))
    empty_stored_block = b"\x01\x00\x00\xff\xff"
    return header + extra + empty_stored_block + struct.pack("<II", 0, 0)


def parse_footer(data: bytes) -> int:
    """The TOC offset from the last 51 bytes of a blob; UserError if they are no footer
    (the legacy 47-byte stargz footer is accepted too)."""
    for size, at in ((FOOTER_SIZE, 16), (47, 12)):
        tail = data[-size:]
        if len(tail) != size or tail[:3] != b"\x1f\x8b\x08" or not tail[3] & 0x04:
            continue
        (xlen,) = struct.unpack_from("<H", tail, 10)
        extra = tail[12 : 12 + xlen]
        if size == FOOTER_SIZE and (extra[:2] != b"SG" or extra[2:4] != struct.pack("<H", 22)):
            continue
        field = extra[at - 12 :] if size == FOOTER_SIZE else extra
        if len(field) == 22 and field[16:] == b"STARGZ":
            try:
                return int(field[:16], 16)
            except ValueError:
                break
    raise UserError("not an eStargz blob: no stargz footer at its end")


def toc_json(entries: list[dict[str, object]]) -> bytes:
    """The TOC as the reference writer marshals it (Go's MarshalIndent with a tab, HTML
    characters escaped), so its digest is what a Go tool would compute from our entries."""
    text = json.dumps({"version": 1, "entries": entries}, indent="\t", ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text.encode()


def toc_entry(member: typing.Any) -> dict[str, object]:
    """The TOCEntry fields of a tar member, as the reference writer fills them from a
    Go tar header (empty fields left out)."""
    entry: dict[str, object] = {"name": name_text(member.name), "type": _TYPES[member.type]}
    if member.type == REGULAR and member.size:
        entry["size"] = member.size
    seconds = member.mtime_ns // 1_000_000_000 + (member.mtime_ns % 1_000_000_000 >= 500_000_000)
    if seconds:
        entry["modtime"] = format_time(seconds * 1_000_000_000, nanos=False)
    if member.type in (SYMLINK, HARDLINK):
        entry["linkName"] = name_text(member.linkname)
    for key, value in (("mode", member.mode), ("uid", member.uid), ("gid", member.gid)):
        if value:
            entry[key] = value
    if member.type in (CHAR, BLOCKDEV):
        for key, value in (("devMajor", member.devmajor), ("devMinor", member.devminor)):
            if value:
                entry[key] = value
    if member.xattrs:
        entry["xattrs"] = xattrs_text(member.xattrs)
    return entry


class _Members:
    """gzip members written one after another to *sink*; each byte of content hashed."""

    def __init__(self, sink: HashingSink, level: int) -> None:
        self._sink = sink
        self._level = level
        self._z: typing.Any = None
        self.plain = hashlib.sha256()
        self.plain_size = 0

    @property
    def offset(self) -> int:
        """Where the next member starts (call after ``close``)."""
        return self._sink.size

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._z is None:
            self._z = zlib.compressobj(self._level, zlib.DEFLATED, 31)  # gzip, mtime 0
        self._sink.write(self._z.compress(data))
        self.plain.update(data)
        self.plain_size += len(data)

    def close(self) -> None:
        if self._z is not None:
            self._sink.write(self._z.flush())
            self._z = None


def _regular_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(tarfile.USTAR_FORMAT)


def write_estargz(
    src: typing.BinaryIO,
    out: typing.BinaryIO,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    level: int = 6,
    progress: Callable[[int], None] | None = None,
) -> TocBlob:
    """Write the plain tar stream *src* as an eStargz blob to *out*.

    One gzip stream of many members: tar headers run on in one member until a regular
    file's data starts; each chunk of data (``chunk_size``) starts a member of its own. The
    input tar is written unchanged, end-of-archive blocks included; then come the
    ``.no.prefetch.landmark`` file (its data a member of its own), the TOC entry
    ``stargz.index.json`` (a member of its own, then two zero blocks) and the footer.
    Tools that read the tar stop at the first end-of-archive marker (Go's archive/tar,
    GNU tar, libarchive, Python's tarfile) and never see the two; lazy readers find the
    TOC through the footer and each file and chunk by its offset, with its
    ``chunkDigest``. The diff_id is the sha256 of the whole decompressed stream: not the
    input's.
    """
    if chunk_size <= 0:
        raise UserError("the chunk size must be positive")
    sink = HashingSink(out)
    members = _Members(sink, level)
    pieces = TarPieces(src)
    entries: list[dict[str, object]] = []

    def add_file(entry: dict[str, object], data: typing.Iterator[bytes], size: int) -> None:
        whole = hashlib.sha256()
        done = 0
        current = entry
        for chunk in exact_chunks(data, chunk_size):
            members.close()
            current["offset"] = members.offset
            if done:
                current["chunkOffset"] = done
            if done + len(chunk) < size:  # the last chunk's size is implied (left out)
                current["chunkSize"] = len(chunk)
            members.write(chunk)
            whole.update(chunk)
            current["chunkDigest"] = "sha256:" + hashlib.sha256(chunk).hexdigest()
            if current is not entry:
                entries.append(current)
            done += len(chunk)
            if progress is not None:
                progress(len(chunk))
            current = {"name": entry["name"], "type": "chunk"}
        if done != size:
            raise UserError(f"{entry['name']}: the archive holds {done} of {size} bytes")
        entry["digest"] = "sha256:" + whole.hexdigest()

    for raw, member in pieces:
        members.write(raw)
        if member is None:
            break
        entry = toc_entry(member)
        entries.append(entry)
        if member.type == REGULAR and member.size:
            add_file(entry, pieces.data(member), member.size)
    # The landmark and the TOC follow the input's end-of-archive blocks: see the module doc.
    landmark = {"name": NO_PREFETCH_LANDMARK.decode(), "type": "reg", "size": 1, "mode": 0o644}
    entries.append(landmark)
    members.write(_regular_header(landmark["name"], 1))  # type: ignore[arg-type]
    add_file(landmark, iter([LANDMARK_DATA]), 1)
    members.write(bytes(BLOCK - 1))
    members.close()
    toc_offset = members.offset
    data = toc_json(entries)
    members.write(_regular_header(TOC_NAME, len(data)) + data + bytes(-len(data) % BLOCK)
                  + bytes(2 * BLOCK))  # fmt: skip
    members.close()
    sink.write(footer(toc_offset))
    toc_digest = "sha256:" + hashlib.sha256(data).hexdigest()
    annotations = {TOC_DIGEST: toc_digest, UNCOMPRESSED_SIZE: str(members.plain_size)}
    diff_id = "sha256:" + members.plain.hexdigest()
    return TocBlob(diff_id, sink.digest(), sink.size, LAYER_GZIP, annotations, toc_digest)
