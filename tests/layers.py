"""Layer directories from literal dicts, and back: the fixtures of the overlay-rule tests.

A *spec* describes one directory tree. Keys are names (``str`` or ``bytes``; a trailing
``/`` is allowed on directories, and ``"a/b/c"`` creates the missing parents); values say
what the entry is::

    {
        "a": "text",                       # regular file (str or bytes content)
        "x": File("#!/bin/sh", mode=0o755, xattrs={"user.k": "v"}),
        "d/": {"e": ""},                   # directory (any dict value, or Dir(...))
        "w": WHITEOUT_CHR,                 # whiteout: character device 0/0
        ".wh.x": "",                       # whiteout file: just an ordinary empty file
        "o/": Opaque({...}, form="trusted"),  # or "user", or "marker" (.wh..wh..opq)
        "s": Symlink("/etc"),
        "f": Fifo(),
        "c": Device(1, 3),                 # a real character device (not a whiteout)
        "h": Hardlink("a"),                # path relative to the layer root
    }

``read_tree(path)`` turns a directory back into a spec in a normal form (directories keyed
``"name/"``, files as ``str`` when they are UTF-8, opaque directories as ``Opaque`` with the
marker removed; modes, owners and hard links are not shown), so a test can state what an
upper should hold after a change: ``assert read_tree(upper) == {"a": WHITEOUT_CHR}``.

``LayerFactory`` (the ``layers`` fixture) builds numbered layer directories under one
temporary root and the ``Stack`` made of them, and closes every stack at teardown.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from unionfs import layerfmt
from unionfs.union.stack import Features, Stack

Name = str | bytes
Text = str | bytes
OpaqueForm = Literal["trusted", "user", "marker"]


@dataclass(frozen=True)
class File:
    content: Text = ""
    mode: int = 0o644
    xattrs: Mapping[Name, Text] = field(default_factory=dict)


@dataclass(frozen=True)
class Dir:
    children: Mapping[Name, object] = field(default_factory=dict)
    mode: int = 0o755
    xattrs: Mapping[Name, Text] = field(default_factory=dict)


@dataclass(frozen=True)
class Opaque:
    """A directory that stops the merge with lower layers, marked in one of three forms."""

    children: Mapping[Name, object] = field(default_factory=dict)
    form: OpaqueForm = "trusted"


@dataclass(frozen=True)
class Symlink:
    target: Text


@dataclass(frozen=True)
class Fifo:
    pass


@dataclass(frozen=True)
class Device:
    major: int
    minor: int
    block: bool = False


@dataclass(frozen=True)
class Hardlink:
    """Another name for the file at *target* (a path relative to the layer root)."""

    target: Text


@dataclass(frozen=True)
class _WhiteoutChr:
    def __repr__(self) -> str:
        return "WHITEOUT_CHR"


WHITEOUT_CHR = _WhiteoutChr()
"""The kernel's whiteout: a character device 0/0 named like the entry it hides."""

Spec = Mapping[Name, object]
_OPAQUE_XATTR = {"trusted": b"trusted.overlay.opaque", "user": b"user.overlay.opaque"}


def _bytes(value: Text) -> bytes:
    return value if isinstance(value, bytes) else os.fsencode(value)


def build(root: str | os.PathLike[str], spec: Spec) -> Path:
    """Create directory *root* (and its parents) holding *spec*; return it as a Path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    links: list[tuple[bytes, bytes]] = []
    _fill(os.fsencode(root), spec, links)
    for path, target in links:
        os.link(os.path.join(os.fsencode(root), target), path)
    return root


def _fill(directory: bytes, spec: Spec, links: list[tuple[bytes, bytes]]) -> None:
    for key, value in spec.items():
        rel = _bytes(key).rstrip(b"/")
        head, _, _ = rel.rpartition(b"/")
        if head:
            os.makedirs(os.path.join(directory, head), exist_ok=True)
        _make(os.path.join(directory, rel), value, links)


def _make(path: bytes, value: object, links: list[tuple[bytes, bytes]]) -> None:
    if isinstance(value, str | bytes):
        value = File(value)
    if isinstance(value, Mapping):
        value = Dir(value)
    if isinstance(value, File):
        with open(path, "wb") as f:
            f.write(_bytes(value.content))
        os.chmod(path, value.mode)
        _set_xattrs(path, value.xattrs)
    elif isinstance(value, Dir):
        os.makedirs(path, exist_ok=True)
        _fill(path, value.children, links)
        _set_xattrs(path, value.xattrs)
        os.chmod(path, value.mode)
    elif isinstance(value, Opaque):
        os.makedirs(path, exist_ok=True)
        _fill(path, value.children, links)
        if value.form == "marker":
            open(os.path.join(path, layerfmt.OPAQUE_MARKER), "wb").close()
        else:
            os.setxattr(path, _OPAQUE_XATTR[value.form], b"y")
    elif isinstance(value, Symlink):
        os.symlink(_bytes(value.target), path)
    elif isinstance(value, Fifo):
        os.mkfifo(path)
    elif isinstance(value, Device):
        kind = stat.S_IFBLK if value.block else stat.S_IFCHR
        os.mknod(path, kind | 0o600, os.makedev(value.major, value.minor))
    elif value is WHITEOUT_CHR:
        os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
    elif isinstance(value, Hardlink):
        links.append((path, _bytes(value.target)))
    else:
        raise TypeError(f"no layer entry for {value!r} at {os.fsdecode(path)}")


def _set_xattrs(path: bytes, xattrs: Mapping[Name, Text]) -> None:
    for name, value in xattrs.items():
        os.setxattr(path, _bytes(name), _bytes(value), follow_symlinks=False)


def read_tree(root: str | os.PathLike[str]) -> dict[str, object]:
    """The spec of directory *root*, in normal form (see the module docstring)."""
    return _read_dir(os.fsencode(root))


def _read_dir(path: bytes) -> dict[str, object]:
    tree: dict[str, object] = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        st = os.lstat(full)
        key = os.fsdecode(name)
        if stat.S_ISDIR(st.st_mode):
            tree[key + "/"] = _read_subdir(full)
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as f:
                data = f.read()
            try:
                tree[key] = data.decode()
            except UnicodeDecodeError:
                tree[key] = data
        elif stat.S_ISLNK(st.st_mode):
            tree[key] = Symlink(os.fsdecode(os.readlink(full)))
        elif stat.S_ISFIFO(st.st_mode):
            tree[key] = Fifo()
        elif layerfmt.is_whiteout_device(st.st_mode, st.st_rdev):
            tree[key] = WHITEOUT_CHR
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            tree[key] = Device(major, minor, block=stat.S_ISBLK(st.st_mode))
        else:
            raise ValueError(f"cannot describe {os.fsdecode(full)} (mode {st.st_mode:o})")
    return tree


def _read_subdir(path: bytes) -> object:
    children = _read_dir(path)
    marker = os.fsdecode(layerfmt.OPAQUE_MARKER)
    if marker in children:
        del children[marker]
        return Opaque(children, form="marker")
    for form, xattr in _OPAQUE_XATTR.items():
        try:
            value = os.getxattr(path, xattr, follow_symlinks=False)
        except OSError:
            continue
        if layerfmt.is_opaque_value(value):
            return Opaque(children, form=form)  # type: ignore[arg-type]
    return children


@dataclass(frozen=True)
class StackDirs:
    """The directories a stack was made of (``work`` exists exactly when ``upper`` does)."""

    lowers: tuple[Path, ...]
    upper: Path | None = None
    work: Path | None = None


class LayerFactory:
    """Numbered layer directories under *root*, and stacks of them.

    Every stack it makes owns its descriptor cache; ``close`` closes the stacks. Use it
    through the ``layers`` fixture, or ``LayerFactory.temporary()`` where a fixture cannot
    be used (inside a hypothesis example).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._count = 0
        self._open: list[Stack] = []
        self._dirs: dict[int, StackDirs] = {}

    def layer(self, spec: Spec | None = None, name: str | None = None) -> Path:
        """Build one layer directory from *spec* (empty by default) and return its path."""
        if name is None:
            name = f"layer{self._count}"
            self._count += 1
        return build(self.root / name, spec or {})

    def _dir(self, value: Spec | Path, name: str) -> Path:
        return value if isinstance(value, Path) else self.layer(value, name)

    def stack(
        self, *lowers: Spec | Path, upper: Spec | Path | None = None,
        features: Features | None = None,
    ) -> Stack:  # fmt: skip
        """A stack of *lowers* (leftmost on top, as in ``lowerdir=``) under *upper*.

        Specs are built into new directories; Paths are used as they are. With an upper,
        an empty workdir is made next to it (see ``dirs``).
        """
        n = len(self._open)
        lower_dirs = tuple(self._dir(spec, f"s{n}-lower{i}") for i, spec in enumerate(lowers))
        upper_dir = work_dir = None
        if upper is not None:
            upper_dir = self._dir(upper, f"s{n}-upper")
            work_dir = self.layer({}, f"s{n}-work")
        roots = [str(d) for d in lower_dirs]
        if upper_dir is None:
            stack = Stack.from_dirs(roots)
        else:
            stack = Stack.from_dirs(
                roots, upper=str(upper_dir), work=str(work_dir), features=features or Features()
            )
        self._open.append(stack)
        self._dirs[id(stack)] = StackDirs(lower_dirs, upper_dir, work_dir)
        return stack

    def dirs(self, stack: Stack) -> StackDirs:
        return self._dirs[id(stack)]

    def close(self) -> None:
        for stack in self._open:
            stack.close()
        self._open.clear()

    @classmethod
    def temporary(cls) -> _TemporaryFactory:
        return _TemporaryFactory()


class _TemporaryFactory:
    def __enter__(self) -> LayerFactory:
        self._root = tempfile.mkdtemp(prefix="unionfs-layers-")
        self._factory = LayerFactory(self._root)
        return self._factory

    def __exit__(self, *exc: object) -> None:
        self._factory.close()
        shutil.rmtree(self._root)


@pytest.fixture(name="layers")
def layer_factory(tmp_path: Path) -> Iterator[LayerFactory]:
    """A ``LayerFactory`` under ``tmp_path``; its stacks are closed at teardown."""
    factory = LayerFactory(tmp_path / "layers")
    yield factory
    factory.close()
