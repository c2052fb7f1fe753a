"""The placeholder tree of a lazy layer, built from its TOC alone: every entry with the
attributes a full extraction gives it (each TOC entry handed as a member, without data,
to ``layertar.apply_members``: the extraction's own rules, so whiteouts, opaque
directories, hard links and the store's marker style are the extraction's; no tar is
written or parsed), each regular file made as large as the TOC says, its blocks
allocated (``du`` as for the whole file). Its data is never read from here until it is
recorded as filled.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator

from unionfs.errors import UserError
from unionfs.layerfmt import MarkerStyle
from unionfs.store import layertar, tarread
from unionfs.store.tarread import Member
from unionfs.store.toc import LayerToc

_TYPES = {"dir": tarread.DIRECTORY, "reg": tarread.REGULAR, "symlink": tarread.SYMLINK,
          "hardlink": tarread.HARDLINK, "char": tarread.CHAR, "block": tarread.BLOCKDEV,
          "fifo": tarread.FIFO}  # fmt: skip


def members(toc: LayerToc) -> Iterator[Member]:
    """The TOC's entries as the members of a tar of headers only (regular files empty;
    the layer root left out: its attributes are the store's, ``LAYER_ROOT_MODE``)."""
    for e in toc.entries:
        if e.path == b"" and e.kind == "dir":
            continue
        yield Member(e.path, e.path, _TYPES[e.kind], e.mode, e.uid, e.gid, 0, e.mtime_ns,
                     e.linkname, e.devmajor, e.devminor, dict(e.xattrs))  # fmt: skip


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
    """The placeholder tree of *toc* in the empty directory *dest*: each regular file
    given its size as it is made, before its times are set."""
    sizes = {e.path: e.size for e in toc.entries if e.kind == "reg"}

    def reserve(fd: int, member: Member) -> None:
        size = sizes.get(member.path, 0)
        if size:
            _reserve(fd, size, member.path)

    layertar.apply_members(members(toc), dest, style, warn=warn, reserve=reserve)
