"""Keys and values of the index. Pure: bytes in, bytes out.

Key: an 8-byte big-endian table id (one per layer, one per stack), the parent path, a NUL,
the name; the root entry is the id alone. The children of one directory are therefore one
contiguous range, and a lookup is one ``get``. Parent paths too long for LMDB's 511-byte
keys are replaced by ``/`` and their SHA-256: a relative path never starts with ``/``, so
no real parent can spell a hashed one, and their children still share one range.

Value: a fixed struct of the stat fields, flags, and the number of the layer that holds the
entry, then the symlink target and the xattrs when the flags say so.
"""

from __future__ import annotations

import hashlib
import stat
import struct
from dataclasses import dataclass

from unionfs.union.stack import Attrs, StatLike

ID = struct.Struct(">Q")
_FIXED = struct.Struct("<HBIIIQqqqIQQQQI")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

WHITEOUT = 1  # the layer hides this name (a chr 0/0 device or a .wh.NAME file)
OPAQUE = 2  # a directory that hides what is below it
LINK = 4  # a symlink target follows
XATTRS = 8  # xattrs follow
MERGED = 16  # a directory made of more than one lower layer (reports nlink 1)

_LONG_PARENT = 200


def table_prefix(table: int) -> bytes:
    return ID.pack(table)


def parent_key(parent: bytes) -> bytes:
    if len(parent) <= _LONG_PARENT:
        return parent
    return b"/" + hashlib.sha256(parent).digest()


def entry_key(table: int, path: bytes) -> bytes:
    if not path:
        return ID.pack(table)
    parent, _, name = path.rpartition(b"/")
    return ID.pack(table) + parent_key(parent) + b"\0" + name


def children_prefix(table: int, path: bytes) -> bytes:
    """The key prefix shared by every child of directory *path*."""
    return ID.pack(table) + parent_key(path) + b"\0"


@dataclass(frozen=True, slots=True)
class Record:
    """One entry of a layer or of a merged stack, as the index keeps it."""

    layer: int
    flags: int
    attrs: Attrs
    target: bytes = b""
    xattrs: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.attrs.st_mode)


def attrs_of(st: StatLike) -> Attrs:
    return Attrs(
        st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
        st.st_rdev, st.st_blksize, st.st_blocks, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns,
    )  # fmt: skip


def encode(record: Record) -> bytes:
    a = record.attrs
    flags = record.flags & ~(LINK | XATTRS)
    if record.target:
        flags |= LINK
    if record.xattrs:
        flags |= XATTRS
    parts = [
        _FIXED.pack(
            record.layer, flags, a.st_mode, a.st_uid, a.st_gid, a.st_size, a.st_atime_ns,
            a.st_mtime_ns, a.st_ctime_ns, a.st_nlink, a.st_rdev, a.st_ino, a.st_dev,
            a.st_blocks, a.st_blksize,
        )
    ]  # fmt: skip
    if record.target:
        parts += [_U16.pack(len(record.target)), record.target]
    if record.xattrs:
        parts.append(_U16.pack(len(record.xattrs)))
        for name, value in record.xattrs:
            parts += [bytes([len(name)]), name, _U32.pack(len(value)), value]
    return b"".join(parts)


def decode(value: bytes) -> Record:
    (layer, flags, mode, uid, gid, size, atime, mtime, ctime, nlink, rdev, ino, dev, blocks,
     blksize) = _FIXED.unpack_from(value)  # fmt: skip
    attrs = Attrs(mode, ino, dev, nlink, uid, gid, size, rdev, blksize, blocks, atime, mtime, ctime)
    if not flags & (LINK | XATTRS):
        return Record(layer, flags, attrs)
    offset = _FIXED.size
    target = b""
    if flags & LINK:
        (length,) = _U16.unpack_from(value, offset)
        offset += 2
        target = bytes(value[offset : offset + length])
        offset += length
    xattrs: list[tuple[bytes, bytes]] = []
    if flags & XATTRS:
        (count,) = _U16.unpack_from(value, offset)
        offset += 2
        for _ in range(count):
            name_len = value[offset]
            name = bytes(value[offset + 1 : offset + 1 + name_len])
            offset += 1 + name_len
            (value_len,) = _U32.unpack_from(value, offset)
            offset += 4
            xattrs.append((name, bytes(value[offset : offset + value_len])))
            offset += value_len
    return Record(layer, flags, attrs, target, tuple(xattrs))


def whiteout_attrs(like: StatLike | None = None) -> Attrs:
    """What a whiteout looks like to the rules: a character device 0/0."""
    if like is None:
        return Attrs(stat.S_IFCHR, 0, 0, 1, 0, 0, 0, 0, 4096, 0, 0, 0, 0)
    return attrs_of(like)._replace(st_mode=stat.S_IFCHR, st_rdev=0)
