"""The placeholder tree of a lazy layer, built from its TOC alone: every entry with the
attributes a full extraction gives it (through ``layertar.extract_layer`` itself, fed a
tar of the TOC's headers with empty regular files, so whiteouts, opaque directories, hard
links and the store's marker style are the extraction's), then each regular file made
as large as the TOC says, its blocks allocated (``du`` as for the whole file). Its data
is never read from here until it is recorded as filled.
"""

from __future__ import annotations

import errno
import io
import os
import tarfile
from collections.abc import Callable

from unionfs.errors import UserError
from unionfs.layerfmt import MarkerStyle
from unionfs.store import layertar
from unionfs.store.tarread import Member
from unionfs.store.toc import LayerToc, TocEntry

_TYPES = {"dir": tarfile.DIRTYPE, "reg": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}  # fmt: skip


def _info(entry: TocEntry) -> tarfile.TarInfo:
    name = entry.path.decode("utf-8", "surrogateescape") or "."
    info = tarfile.TarInfo(name + "/" if entry.kind == "dir" and name != "." else name)
    info.type = _TYPES[entry.kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.mtime = entry.mtime_ns / 1e9
    info.linkname = entry.linkname.decode("utf-8", "surrogateescape")
    info.devmajor, info.devminor = entry.devmajor, entry.devminor
    info.pax_headers = {
        "SCHILY.xattr." + k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
        for k, v in entry.xattrs.items()
    }
    if entry.mtime_ns % 1_000_000_000:
        info.pax_headers["mtime"] = f"{entry.mtime_ns / 1e9:.9f}"
    return info


def headers_tar(toc: LayerToc) -> bytes:
    """The layer as a tar of headers only (regular files empty)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:  # fmt: skip
        for entry in toc.entries:
            if entry.path == b"" and entry.kind == "dir":
                continue  # the layer root's attributes are the store's (LAYER_ROOT_MODE)
            tar.addfile(_info(entry))
    return out.getvalue()


def _reserve(fd: int, size: int, path: bytes) -> None:
    """The placeholder at its size, its blocks allocated (unwritten extents: they read as
    zeros, never served): ``du`` and ``st_blocks`` show what the whole file will take, as
    for an extracted file, and filling it later cannot fail for want of space."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(f"lazy layer: no space for {size} bytes of "
                            f"{path.decode(errors='replace')}") from None  # fmt: skip
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        os.ftruncate(fd, size)  # a filesystem without fallocate: sparse, du says 0


def build(toc: LayerToc, dest: str, style: MarkerStyle, warn: Callable[[str], None]) -> None:
    """The placeholder tree of *toc* in the empty directory *dest*: one extraction, each
    regular file given its size as it is made, before its times are set."""
    sizes = {e.path: e.size for e in toc.entries if e.kind == "reg"}

    def reserve(fd: int, member: Member) -> None:
        size = sizes.get(member.path, 0)
        if size:
            _reserve(fd, size, member.path)

    layertar.extract_layer(io.BytesIO(headers_tar(toc)), dest, style, warn=warn, reserve=reserve)
