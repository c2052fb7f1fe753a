"""A lazy layer's whole blob against what it was served from: its tar's members against the
TOC's entries (the placeholder tree was built from the TOC alone, and nothing binds the TOC
to the tar but this), each file's data chunk by chunk against the TOC's chunk digests, and
the whole decompressed stream against the diff_id of the image config. Reads a stream;
writes nothing (``Sink`` does, for the prefetch that reads the blob through here).
"""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Callable, Iterator

from unionfs.errors import UserError
from unionfs.registry.auth import RegistryError
from unionfs.store import tarread
from unionfs.store.compress import open_layer
from unionfs.store.estargz import TOC_NAME
from unionfs.store.toc import (
    ESTARGZ,
    NO_PREFETCH_LANDMARK,
    PREFETCH_LANDMARK,
    Chunk,
    LayerToc,
    TocEntry,
)

_KINDS = {tarread.REGULAR: "reg", tarread.HARDLINK: "hardlink", tarread.SYMLINK: "symlink",
          tarread.CHAR: "char", tarread.BLOCKDEV: "block", tarread.DIRECTORY: "dir",
          tarread.FIFO: "fifo"}  # fmt: skip
_NOT_IN_TOC = {TOC_NAME.encode(), PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK}  # eStargz's own


class Mismatch(Exception):
    """The blob is not what its TOC or the image config says: a layer to refuse."""


class Sink(typing.Protocol):
    """What the walk hands each regular file's data to, every chunk already verified."""

    def chunk(self, entry: TocEntry, chunk: Chunk, data: bytes) -> None: ...
    def file_done(self, entry: TocEntry) -> None: ...


def _header(entry: TocEntry) -> tuple[object, ...]:
    return (entry.kind, entry.mode, entry.uid, entry.gid, entry.size, entry.linkname,
            entry.devmajor, entry.devminor, entry.xattrs)  # fmt: skip


def _member_header(m: tarread.Member, toc_mtime_ns: int) -> tuple[object, ...]:
    kind = _KINDS.get(m.type, repr(m.type))
    special = kind in ("char", "block")
    return (kind, m.mode & 0o7777, m.uid, m.gid, m.size if kind == "reg" else 0,
            m.linkname if kind in ("symlink", "hardlink") else b"",
            m.devmajor if special else 0, m.devminor if special else 0, m.xattrs)  # fmt: skip


def _same_mtime(member_ns: int, toc_ns: int) -> bool:
    """At the TOC's precision: eStargz TOCs carry whole seconds (RFC 3339 without a
    fraction; writers round or truncate), so a tar's finer mtime is compared within the
    second. The placeholder tree has the TOC's time: the known, accepted difference."""
    if toc_ns % 1_000_000_000 == 0:
        return abs(member_ns - toc_ns) < 1_000_000_000
    return member_ns == toc_ns


def _chunks_of(pieces: Iterator[bytes], chunks: tuple[Chunk, ...]
               ) -> Iterator[tuple[Chunk, bytes]]:  # fmt: skip
    """The file's data (arbitrary pieces) regrouped along the TOC's chunks."""
    buf = bytearray()
    it = iter(chunks)
    current = next(it, None)
    for piece in pieces:
        buf += piece
        while current is not None and len(buf) >= current.size:
            yield current, bytes(buf[: current.size])
            del buf[: current.size]
            current = next(it, None)
    if current is not None or buf:
        raise Mismatch("the file's data does not tile into the TOC's chunks")


def walk(blob: typing.BinaryIO, toc: LayerToc, diff_id: str, sink: Sink | None = None,
         stopped: Callable[[], bool] = lambda: False) -> bool:  # fmt: skip
    """Read the whole compressed *blob*: Mismatch unless every member is the TOC's entry of
    its path (attributes, and data by chunk digest), the TOC has no entry the tar lacks,
    and the decompressed stream hashes to *diff_id*. False if *stopped* came first."""
    wanted: dict[bytes, list[TocEntry]] = {}
    for e in toc.entries:  # a path may come twice (the later wins): matched in order
        wanted.setdefault(e.path, []).append(e)
    try:
        stream = tarread.TarStream(open_layer(blob), None)
        while (member := stream.next()) is not None:
            if stopped():
                return False
            if toc.format == ESTARGZ and member.path in _NOT_IN_TOC:
                continue  # the reference writer's TOC and landmark members (ours follow the end)
            entries = wanted.get(member.path)
            entry = entries.pop(0) if entries else None
            if entry is None and member.path == b"" and member.type == tarread.DIRECTORY:
                continue  # "./": the layer root's attributes are the store's either way
            where = tarread.show(member.name)
            if entry is None:
                raise Mismatch(f"the tar has {where}, which the TOC does not list")
            if _member_header(member, entry.mtime_ns) != _header(entry):
                raise Mismatch(f"{where}: the tar's header differs from the TOC's entry")
            if not _same_mtime(member.mtime_ns, entry.mtime_ns):
                raise Mismatch(f"{where}: the tar's mtime differs from the TOC's")
            if entry.kind != "reg" or entry.size == 0:
                continue
            for chunk, data in _chunks_of(stream.data(member), entry.chunks):
                if "sha256:" + hashlib.sha256(data).hexdigest() != chunk.digest:
                    raise Mismatch(f"{where}: its data at {chunk.file_offset} differs from "
                                   "the TOC's chunk digest")  # fmt: skip
                if sink is not None:
                    sink.chunk(entry, chunk, data)
            if sink is not None:
                sink.file_done(entry)
        got = stream.finish()
        while blob.read(1 << 20):  # the rest (a footer): the blob's digest is checked at EOF
            pass
    except RegistryError:
        raise  # the transfer failed (not the bytes): the caller tries again
    except UserError as exc:  # not a tar, a truncated one, a wrong blob digest: refused
        raise Mismatch(str(exc)) from None
    missing = [p for p, left in wanted.items() if left and p != b""]
    if missing:
        raise Mismatch(f"the TOC lists {tarread.show(missing[0])}, which the tar lacks")
    if got != diff_id:
        raise Mismatch(f"the layer's tar hashes to {got[:19]}, not to its diff_id {diff_id[:19]}")
    return True
