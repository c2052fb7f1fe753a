"""Hand-made tar archives for the layer tests, hostile ones included.

``craft([...])`` writes exactly the entries given, in order, with whatever names, link
names and types they carry (``..``, absolute paths, duplicates): the stdlib writer does
not check them. ``E`` describes one entry. ``gz``/``zst`` compress; ``corrupt_checksum``
spoils one header. Nothing here extracts anything.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass, field

import zstandard

MTIME = 1_700_000_000


@dataclass(frozen=True)
class E:
    """One entry: ``E("a/b", data=b"x")``, ``E("d/", "dir")``, ``E("s", "symlink", link="..")``,
    ``E("h", "link", link="a")``, ``E("c", "chr", dev=(1, 3))``, ``E("p", "fifo")``."""

    name: str
    kind: str = "file"
    data: bytes = b""
    link: str = ""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    mtime: int = MTIME
    dev: tuple[int, int] = (0, 0)
    xattrs: dict[str, bytes] = field(default_factory=dict)
    pax: dict[str, str] = field(default_factory=dict)


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "link": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "sparse": tarfile.GNUTYPE_SPARSE,
}


def craft(entries: list[E], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed tar holding *entries* exactly as given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=fmt, encoding="utf-8") as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = _TYPES[e.kind]
            info.mode = e.mode if e.mode is not None else (0o755 if e.kind == "dir" else 0o644)
            info.uid, info.gid, info.mtime = e.uid, e.gid, e.mtime
            info.linkname = e.link
            info.devmajor, info.devminor = e.dev
            headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                       for k, v in e.xattrs.items()}  # fmt: skip
            info.pax_headers = {**headers, **e.pax}
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return out.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def corrupt_checksum(data: bytes, header_offset: int) -> bytes:
    """*data* with the header block at *header_offset* changed after its checksum."""
    spoiled = bytearray(data)
    spoiled[header_offset + 5] ^= 0x01  # a byte of the name: the checksum no longer adds up
    return bytes(spoiled)


def header_offsets(data: bytes) -> list[int]:
    """The offset of every entry's header block (pax headers skipped), in order."""
    offsets = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            offsets.append(member.offset)
    return offsets
