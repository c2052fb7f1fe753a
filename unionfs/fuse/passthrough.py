"""FUSE passthrough (``-o passthrough``): which opens the kernel serves straight from a
layer's file, and the backing ids registered for them. It decides and counts; it opens
nothing itself (``state._file_info`` hands it a way to) and raises no FUSEError.

The kernel's rules (fs/fuse/iomode.c, 6.9 to 6.18): an inode has at most one backing file
at a time, held from its first passthrough open to its last close; while it has one, any
open of the inode that is not a passthrough open with that same backing fails with EIO
(a direct-I/O one too); while it has opens through the page cache, a passthrough open
fails with EIO. Only files whose data is on the upper get a backing: a reader of a lower
file would pin the lower file as the inode's backing, and a writer opened meanwhile
(copy-up: the upper is another file) could then get no answer but EIO.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("unionfs.fuse")

CACHED = 0  # an inode's opens go through the page cache (no backing id)


@dataclass(slots=True)
class _Use:
    backing: int  # the backing id of every open of the inode, or CACHED
    opens: int = 0


class Backings:
    """The io mode of each inode with counted opens.

    Invariants: ``_uses[ino]`` exists while inode *ino* has counted opens (``opens`` > 0),
    and all of them are in its one mode: passthrough with ``backing``, or cached;
    ``_handles`` maps each counted handle to its inode. A backing id is released when the
    last handle that used it is. Direct-I/O opens are not counted: the kernel does not.
    """

    def __init__(self, register: Callable[[int], int], release: Callable[[int], None]) -> None:
        self._register = register  # descriptor -> backing id (pyfuse3.passthrough_open)
        self._release = release  # backing id -> None (pyfuse3.passthrough_close)
        self._uses: dict[int, _Use] = {}
        self._handles: dict[int, int] = {}
        # Inodes that were written past the kernel's page cache since their last cached
        # open: the next cached open must not keep the pages the kernel may still hold.
        self.unkept: set[int] = set()
        self.refusals: dict[int, int] = {}  # errno -> times the kernel refused a backing

    def backing_of(self, ino: int) -> int | None:
        """The backing id every open of *ino* must use now, CACHED if its opens go through
        the page cache, None if it has no counted open."""
        use = self._uses.get(ino)
        return None if use is None else use.backing

    def passthrough(self, fh: int, ino: int, descriptor: Callable[[], int]) -> int | None:
        """A backing id for handle *fh* of inode *ino*: the inode's own, or one registered
        from ``descriptor()`` (a descriptor of the file, opened for reading and writing,
        which the caller closes). None if the inode has cached opens, or the kernel
        refused the file (the caller then serves it itself)."""
        use = self._uses.get(ino)
        if use is None:
            try:
                backing = self._register(descriptor())
            except OSError as exc:  # e.g. ELOOP: a layer on a stacking file system
                code = exc.errno or errno.EIO
                if code not in self.refusals:
                    log.warning("passthrough refused for inode %d: %s", ino, exc)
                self.refusals[code] = self.refusals.get(code, 0) + 1
                return None
            use = self._uses[ino] = _Use(backing)
        elif use.backing == CACHED:
            return None
        use.opens += 1
        self._handles[fh] = ino
        return use.backing

    def cached(self, fh: int, ino: int) -> bool:
        """Count handle *fh* of inode *ino* as a cached open, and say whether the kernel may
        keep the pages it holds of the inode. Only while the inode has no backing."""
        use = self._uses.setdefault(ino, _Use(CACHED))
        assert use.backing == CACHED, "a cached open of an inode with a backing file"
        use.opens += 1
        self._handles[fh] = ino
        if ino in self.unkept:
            self.unkept.discard(ino)
            return False
        return True

    def released(self, fh: int) -> None:
        """Handle *fh* was released: its inode's last one releases the backing id."""
        ino = self._handles.pop(fh, None)
        if ino is None:
            return
        use = self._uses[ino]
        use.opens -= 1
        if use.opens:
            return
        del self._uses[ino]
        if use.backing != CACHED:
            self.unkept.add(ino)  # written to the backing file, past the page cache
            try:
                self._release(use.backing)
            except OSError as exc:  # the id is gone already: nothing is leaked
                log.warning("releasing backing id %d of inode %d: %s", use.backing, ino, exc)

    def forget(self, ino: int) -> None:
        """The kernel dropped inode *ino*, and its pages with it."""
        self.unkept.discard(ino)
