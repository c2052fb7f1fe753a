"""EntryAttributes for the kernel, built from resolved entries.

Timeouts are long (the kernel caches entries and attributes and forgets them only when we
say so): every change goes through this filesystem, and lower layers do not change under a
mount, as with kernel overlayfs.
"""

from __future__ import annotations

import pyfuse3

from unionfs.union.stack import Resolved, StatLike

TIMEOUT = 300.0


def from_stat(ino: int, st: StatLike, nlink: int | None = None) -> pyfuse3.EntryAttributes:
    attrs = pyfuse3.EntryAttributes()
    attrs.st_ino = ino
    attrs.generation = 0
    attrs.entry_timeout = TIMEOUT
    attrs.attr_timeout = TIMEOUT
    attrs.st_mode = st.st_mode
    attrs.st_nlink = st.st_nlink if nlink is None else nlink
    attrs.st_uid = st.st_uid
    attrs.st_gid = st.st_gid
    attrs.st_rdev = st.st_rdev
    attrs.st_size = st.st_size
    attrs.st_blksize = st.st_blksize
    attrs.st_blocks = st.st_blocks
    attrs.st_atime_ns = st.st_atime_ns
    attrs.st_mtime_ns = st.st_mtime_ns
    attrs.st_ctime_ns = st.st_ctime_ns
    return attrs


def attributes(ino: int, res: Resolved, unlinked: bool = False) -> pyfuse3.EntryAttributes:
    # A merged directory reports one link, as the kernel does: counting subdirectories of
    # every layer is not worth it, and nlink=1 tells find(1) not to trust the count.
    if unlinked:
        return from_stat(ino, res.st, 0)
    return from_stat(ino, res.st, 1 if res.is_merged and res.is_dir else None)


def negative() -> pyfuse3.EntryAttributes:
    """A cacheable "no such entry": st_ino 0 with a timeout (pyfuse3's negative entry)."""
    attrs = pyfuse3.EntryAttributes()
    attrs.st_ino = 0
    attrs.entry_timeout = TIMEOUT
    return attrs
