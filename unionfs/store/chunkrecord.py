"""The per-file record a lazy mount keeps in its index for a file whose data is still in
the registry: a ``TocEntry``'s chunk table packed as version (1 byte) + file sha256 (32),
then per chunk offset, end, file_offset, size (u64 BE), skip (u32), 12 reserved bytes and
the chunk's sha256 (32): 80 bytes a chunk. Chunk digests name content-cache entries. Pure.
"""

from __future__ import annotations

import struct

from unionfs.errors import UserError
from unionfs.store.toc import Chunk

VERSION = 1
_HEAD = struct.Struct(">B32s")
_CHUNK = struct.Struct(">QQQQI12x32s")  # 80 bytes; 12 reserved for flags (e.g. zeros chunks)


def _raw(digest: str) -> bytes:
    if not digest:
        return bytes(32)
    if not digest.startswith("sha256:") or len(digest) != 71:
        raise UserError(f"not a sha256 digest: {digest[:80]!r}")
    return bytes.fromhex(digest[7:])


def _text(raw: bytes) -> str:
    return "" if raw == bytes(32) else "sha256:" + raw.hex()


def pack(file_digest: str, chunks: tuple[Chunk, ...]) -> bytes:
    """The record of a file with content digest *file_digest* stored as *chunks*."""
    out = [_HEAD.pack(VERSION, _raw(file_digest))]
    for c in chunks:
        out.append(_CHUNK.pack(c.offset, c.end, c.file_offset, c.size, c.skip, _raw(c.digest)))
    return b"".join(out)


def unpack(data: bytes) -> tuple[str, tuple[Chunk, ...]]:
    """(file digest, chunks) of a record; UserError for one this version cannot read."""
    if len(data) < _HEAD.size or (len(data) - _HEAD.size) % _CHUNK.size:
        raise UserError("corrupt chunk record: bad length")
    version, whole = _HEAD.unpack_from(data)
    if version != VERSION:
        raise UserError(f"chunk record of unknown version {version}")
    chunks = []
    for at in range(_HEAD.size, len(data), _CHUNK.size):
        offset, end, file_offset, size, skip, digest = _CHUNK.unpack_from(data, at)
        chunks.append(Chunk(offset, end, file_offset, size, skip, _text(digest)))
    return _text(whole), tuple(chunks)
