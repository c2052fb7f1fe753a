"""What a container changed, as ``docker diff``/``podman diff`` print it: ``A``, ``C``, ``D``.

Computed from the upper directory alone, checked against the merged view of the lower
layers, the way containers/storage's overlay driver does (``archive.OverlayChanges``):
- a whiteout (any marker form) is ``D`` for the name it hides, and only that name;
- an opaque directory that hides a lower entry is ``D`` too (it was removed and made
  again); its children in the upper are then ``A``, or ``C`` where a lower has the path;
- any other upper entry is ``C`` when the lowers show that path, else ``A``; a directory
  whose mode and mtime match the lower one is not a change by itself;
- the parents of an ``A`` or ``D`` are ``C`` (docker prints them so a tar of the changes
  can restore their attributes).
Lowers are only looked at through ``safepath`` (lstat, no symlink followed).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from unionfs import layerfmt
from unionfs.safepath import DirFdCache, LayerDir, join, split


def _opaque(layer: LayerDir, path: bytes) -> bool:
    if any(layerfmt.is_opaque_value(layer.getxattr(path, n)) for n in layerfmt.OPAQUE_XATTRS):
        return True
    return layer.lstat(join(path, layerfmt.OPAQUE_MARKER)) is not None


def _whiteout_file(layer: LayerDir, path: bytes) -> bool:
    parent, name = split(path)
    return layer.lstat(join(parent, layerfmt.whiteout_file_name(name))) is not None


def _same_time(a: int, b: int) -> bool:
    """containers/storage's sameFsTime: equal, or equal seconds where one side has no ns."""
    sa, na = divmod(a, 1_000_000_000)
    sb, nb = divmod(b, 1_000_000_000)
    return a == b or (sa == sb and (na == 0 or nb == 0))


class _Lowers:
    """The merged view of the lower layers (topmost first), looked up path by path."""

    def __init__(self, layers: list[LayerDir]) -> None:
        self.layers = layers
        self._dirs: dict[bytes, tuple[int, ...]] = {b"": tuple(range(len(layers)))}

    def _hidden_or_stat(self, i: int, path: bytes) -> tuple[bool, os.stat_result | None]:
        """(hidden here, entry here) for *path* in layer *i*."""
        layer = self.layers[i]
        st = layer.lstat(path)
        if st is None:
            return _whiteout_file(layer, path), None
        if layerfmt.is_whiteout_device(st.st_mode, st.st_rdev):
            return True, None
        return False, st

    def dir_layers(self, path: bytes) -> tuple[int, ...]:
        """The layers whose directory *path* makes up the merged directory, top first."""
        found = self._dirs.get(path)
        if found is not None:
            return found
        parent, _ = split(path)
        layers: list[int] = []
        for i in self.dir_layers(parent):
            hidden, st = self._hidden_or_stat(i, path)
            if hidden:
                break
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            layers.append(i)
            if _opaque(self.layers[i], path):
                break
        self._dirs[path] = tuple(layers)
        return self._dirs[path]

    def lookup(self, path: bytes) -> os.stat_result | None:
        """The lstat of what the lowers show at *path*, or None."""
        parent, _ = split(path)
        for i in self.dir_layers(parent):
            hidden, st = self._hidden_or_stat(i, path)
            if hidden:
                return None
            if st is not None:
                return st
        return None


class _Walk:
    def __init__(self, upper: LayerDir, lowers: _Lowers) -> None:
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

    def directory(self, path: bytes) -> None:
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
            self.entry(child, st)

    def entry(self, path: bytes, st: os.stat_result) -> None:
        is_dir = stat.S_ISDIR(st.st_mode)
        below = self.lowers.lookup(path)
        if below is not None and is_dir and _opaque(self.upper, path):
            self.record(path, "D", True)
        elif below is None:
            self.record(path, "A", is_dir)
        elif (
            is_dir
            and stat.S_ISDIR(below.st_mode)
            and below.st_mode == st.st_mode
            and _same_time(below.st_mtime_ns, st.st_mtime_ns)
        ):
            pass  # an unchanged directory: shown only as the parent of a change
        else:
            self.record(path, "C", is_dir)
        if is_dir:
            self.directory(path)


def changes(upper: str, lowers: Sequence[str]) -> list[tuple[str, str]]:
    """``docker diff`` lines for a container: ("A"|"C"|"D", "/path"), computed from its
    upper directory and its lower layer directories (topmost first); sorted by path, a
    directory before what it holds."""
    cache = DirFdCache()
    opened: list[LayerDir] = []
    try:
        top = LayerDir(upper, cache)
        opened.append(top)
        for lower in lowers:
            opened.append(LayerDir(lower, cache, lower=True))
        walk = _Walk(top, _Lowers(opened[1:]))
        walk.directory(b"")
    finally:
        for layer in opened:
            layer.close()
        cache.close()
    ordered = sorted(walk.found.items(), key=lambda item: item[0].split(b"/"))
    return [(kind, "/" + os.fsdecode(path)) for path, kind in ordered]
