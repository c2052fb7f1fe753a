"""Room on the upper layer: which writes may go through the kernel's write-back cache.

Kernel overlayfs fails write(2) with ENOSPC once the upper cannot take the data. A write
into FUSE's write-back cache succeeds at once and reaches us later, when its failure can
only be reported at fsync or close, after the data is gone. ``UpperSpace`` keeps the cache
where it is harmless: the kernel holds at most ``dirty_limit`` bytes of this mount's
dirty pages (the bdi's limit), so while the upper has ``reserve`` free a new handle may
cache; below it a handle opened for writing uses direct I/O, and handles that already
cache are checked before every write(2) (the kernel's GETATTR through the file, see
``refuses``) and refused below ``floor``, while everything the kernel may still hold dirty
fits. It only measures and decides: the handlers act on its answers; no pyfuse3 here.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("unionfs.fuse")

MiB = 1 << 20
# What the kernel may hold dirty for a FUSE mount when the bdi's limit is unknown (FUSE
# sets max_ratio 1%, strictlimit: 1% of the machine's dirty threshold, ~47 MB on 24 GB).
DEFAULT_DIRTY_LIMIT = 64 * MiB
# As root we lower the bdi's limit to this (if higher): the reserve, below which writes go
# direct, grows with it. 32 MiB of dirty pages still let 1 MiB write-back requests flow.
ROOT_DIRTY_LIMIT = 32 * MiB
# A statvfs answer is reused this long (less what we wrote since): ~4 us a call, and
# ``tar x`` opens thousands of files a second.
FRESH_NS = 10_000_000


def floor_for(dirty_limit: int) -> int:
    """Free space below which a cached write is refused: what the kernel may hold dirty
    (its throttling lets a writer overshoot the bdi limit a little: half again, plus 4 MiB)."""
    return dirty_limit + dirty_limit // 2 + 4 * MiB


class UpperSpace:
    """Free space of the upper, and the page-cache writers that depend on it.

    Invariants: ``cached`` maps every open handle that writes through the page cache to
    its inode; ``watched`` is empty while the upper has ``reserve`` free, else the inodes
    of ``cached`` (the kernel must ask before each of their writes).
    """

    def __init__(
        self,
        statvfs: Callable[[], os.statvfs_result] | None,
        dirty_limit: int = DEFAULT_DIRTY_LIMIT,
        can_refuse: bool = True,
    ) -> None:
        self._statvfs = statvfs  # None: no upper, nothing is written
        self.can_refuse = can_refuse  # the binding tells getattr the file handle
        self.cached: dict[int, int] = {}
        self.watched: set[int] = set()
        self._free = 0
        self._at = -FRESH_NS
        self.set_dirty_limit(dirty_limit)

    def set_dirty_limit(self, dirty_limit: int) -> None:
        self.dirty_limit = dirty_limit
        self.floor = floor_for(dirty_limit)
        self.reserve = 2 * self.floor

    # -- measuring -----------------------------------------------------------------------
    def free(self, exact: bool = False) -> int:
        """Bytes an unprivileged writer may still put on the upper (f_bavail: the daemon
        has no CAP_SYS_RESOURCE for ext4's reserved blocks in a container, nor rootless)."""
        if self._statvfs is None:
            return 0
        now = time.monotonic_ns()
        if exact or now - self._at > FRESH_NS or self._free < self.reserve:
            st = self._statvfs()
            self._free, self._at = st.f_bavail * st.f_frsize, now
        return self._free

    def wrote(self, size: int) -> None:
        """*size* bytes went to the upper (the next answer counts them before it asks)."""
        self._free -= size

    # -- deciding ------------------------------------------------------------------------
    def may_cache(self) -> bool:
        """Whether a handle opened for writing now may use the write-back cache."""
        return self.can_refuse and self.free() >= self.reserve

    def opened(self, fh: int, ino: int) -> None:
        """A handle that writes through the page cache was opened."""
        self.cached[fh] = ino

    def released(self, fh: int) -> None:
        if self.cached.pop(fh, None) is not None:
            self.watched &= set(self.cached.values())

    def newly_watched(self) -> set[int]:
        """After a write: the inodes whose cached attributes the kernel must drop now, so
        that it asks (``refuses``) before the next write into its cache; empty unless the
        upper just fell below ``reserve``. Space coming back ends the watch."""
        if not self.cached:
            return set()
        if self.free() >= self.reserve:
            self.watched.clear()
            return set()
        fresh = set(self.cached.values()) - self.watched
        self.watched |= fresh
        return fresh

    def refuses(self, fh: int | None) -> bool:
        """Asked by getattr through handle *fh* (the kernel does before a cached write once
        the attributes of a watched inode expired): refuse the write, as the upper may not
        take it together with what the kernel already holds dirty?"""
        if fh is None or fh not in self.cached or not self.watched:
            return False
        return self.free(exact=True) < self.floor

    def admit_direct(self, size: int) -> int:
        """How much of a direct write of *size* bytes to do (the rest is the caller's short
        write). Only while pages cached by other handles are pending does it keep ``floor``
        free for them; otherwise the upper itself answers, exactly as under the kernel."""
        if not self.cached:
            return size
        room = self.free(exact=True) - self.floor
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return min(size, room)


# -- the bdi: how much the kernel may hold dirty for our mount ------------------------------
def dirty_limit(bdi: Path | None) -> int:
    """The dirty limit in bytes of backing device *bdi* (``/sys/class/bdi/<major:minor>``
    of the mount, None if unknown), lowered to ``ROOT_DIRTY_LIMIT`` where we may."""
    if bdi is None:
        return DEFAULT_DIRTY_LIMIT
    path = bdi / "max_bytes"
    try:
        limit = int(path.read_text())
    except (OSError, ValueError) as exc:
        log.info("cannot read %s (%s): assuming %d bytes may be dirty", path, exc,
                 DEFAULT_DIRTY_LIMIT)  # fmt: skip
        return DEFAULT_DIRTY_LIMIT
    if limit <= ROOT_DIRTY_LIMIT:
        return limit
    try:
        path.write_text(str(ROOT_DIRTY_LIMIT))
        return int(path.read_text())  # the kernel rounds it (it keeps a ratio)
    except (OSError, ValueError):  # not root: the kernel's own limit stands
        return limit
