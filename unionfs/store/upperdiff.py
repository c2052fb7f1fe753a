"""What a container changed, as ``docker diff``/``podman diff`` print it: ``A``, ``C``, ``D``.

The upper directory diffed against the merged view of its lower layers, the way
containers/storage's overlay driver does (``archive.OverlayChanges``); the merged view is
the ``union`` rules' own (``lookup``), never a second reading of the markers:
- a whiteout (any marker form) is ``D`` for the name it hides, and only that name;
- an opaque directory that hides a lower entry is ``D`` too (it was removed and made
  again); its children in the upper are then ``A``, or ``C`` where a lower has the path;
- any other upper entry is ``C`` when the lowers show that path, else ``A``; a directory
  whose mode and mtime match the lower one is not a change by itself;
- the parents of an ``A`` or ``D`` are ``C`` (docker prints them so a tar of the changes
  can restore their attributes).
Reads only, through ``safepath`` (lstat, no symlink followed); redirects are not followed
(containers/storage does not either, and store layers carry none).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from unionfs import layerfmt
from unionfs.safepath import DirFdCache, join, split
from unionfs.union.lookup import lookup
from unionfs.union.stack import DirLayer, Features, Resolved, Stack


def _same_time(a: int, b: int) -> bool:
    """containers/storage's sameFsTime: equal, or equal seconds where one side has no ns."""
    sa, na = divmod(a, 1_000_000_000)
    sb, nb = divmod(b, 1_000_000_000)
    return a == b or (sa == sb and (na == 0 or nb == 0))


class _Walk:
    """One pass over the upper, each directory beside the lowers' merged directory of the
    same path (None where the lowers show no directory there)."""

    def __init__(self, upper: DirLayer, lowers: Stack | None) -> None:
        self.upper = upper
        self.lowers = lowers
        self.found: dict[bytes, str] = {}
        self.recorded_dirs: set[bytes] = set()

    def record(self, path: bytes, kind: str, is_dir: bool) -> None:
        if is_dir:
            self.recorded_dirs.add(path)
        if kind in ("A", "D"):
            parent = split(path)[0]
            while parent and parent not in self.recorded_dirs:
                self.found.setdefault(parent, "C")
                self.recorded_dirs.add(parent)
                parent = split(parent)[0]
        self.found[path] = kind

    def directory(self, path: bytes, below: Resolved | None) -> None:
        entries = sorted(self.upper.scandir(path))
        names = {name for name, _ in entries}
        for name, st in entries:
            child = join(path, name)
            hidden = layerfmt.whited_out_name(name)
            if layerfmt.is_marker_name(name):  # any type, as union/readdir reads it
                if hidden is not None and hidden not in names:
                    self.record(join(path, hidden), "D", False)
                continue  # the opaque marker, AUFS metadata
            if layerfmt.is_whiteout_device(st.st_mode, st.st_rdev):
                self.record(child, "D", False)
                continue
            self.entry(child, st, self._below(below, name))

    def _below(self, parent: Resolved | None, name: bytes) -> Resolved | None:
        """What the lowers show at *name* in their merged directory *parent*."""
        if parent is None or self.lowers is None:
            return None
        return lookup(self.lowers, parent, name)

    def entry(self, path: bytes, st: os.stat_result, below: Resolved | None) -> None:
        is_dir = stat.S_ISDIR(st.st_mode)
        if below is not None and is_dir and self.upper.is_opaque(path):
            self.record(path, "D", True)
        elif below is None:
            self.record(path, "A", is_dir)
        elif (
            is_dir
            and below.is_dir
            and below.st.st_mode == st.st_mode
            and _same_time(below.st.st_mtime_ns, st.st_mtime_ns)
        ):
            pass  # an unchanged directory: shown only as the parent of a change
        else:
            self.record(path, "C", is_dir)
        if is_dir:
            self.directory(path, below if below is not None and below.is_dir else None)


def changes(upper: str, lowers: Sequence[str], userxattr: bool = False) -> list[tuple[str, str]]:
    """``docker diff`` lines for a container: ("A"|"C"|"D", "/path"), computed from its
    upper directory and its lower layer directories (topmost first); sorted by path, a
    directory before what it holds. *userxattr*: markers are ``user.overlay.*`` alone."""
    cache = DirFdCache()
    opened: list[DirLayer] = []
    try:
        top = DirLayer(upper, cache)
        opened.append(top)
        below: list[DirLayer] = []
        for lower in lowers:
            # Read as a mount reads them: never moving an atime (safepath's lower=True).
            below.append(DirLayer(lower, cache, lower=True))
            opened.append(below[-1])
        if userxattr:
            top.opaque_xattrs = layerfmt.opaque_xattrs(layerfmt.USERXATTR_PREFIXES)
        features = Features("nofollow", userxattr=userxattr)
        stack = Stack(below, features=features) if below else None
        walk = _Walk(top, stack)
        walk.directory(b"", None if stack is None else stack.root())
    finally:
        for layer in opened:
            layer.close()
        cache.close()
    ordered = sorted(walk.found.items(), key=lambda item: item[0].split(b"/"))
    return [(kind, "/" + os.fsdecode(path)) for path, kind in ordered]
