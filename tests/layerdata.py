"""Layer contents as data, written to disk: the fixtures of the mounted and differential tests.

A layer is a ``Dir`` tree (``bytes`` names -> nodes); ``build_layer`` writes it to disk with
the markers either in the kernel's forms (char device 0/0, ``trusted.overlay.opaque``) or in
the forms each node asks for (``.wh.NAME``, ``user.overlay.opaque``, ``.wh..wh..opq``).
It mounts nothing (``mountutil`` does).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class File:
    content: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    link: int | None = None  # files of one layer with the same link group are hard links


@dataclass
class Dir:
    children: dict[bytes, Node] = field(default_factory=dict)
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    opaque: str | None = None  # None, or the unionfs form: "trusted", "user" or "wh"
    opaque_value: bytes = b"y"  # an xattr form with another value is not opaque


@dataclass
class Symlink:
    target: bytes
    uid: int = 0
    gid: int = 0


@dataclass
class Fifo:
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass
class Device:
    char: bool = True
    major: int = 1
    minor: int = 3
    mode: int = 0o644


@dataclass
class Whiteout:
    form: str = "chr"  # the unionfs form: "chr" (device 0/0) or "wh" (an empty .wh.NAME file)


Node = File | Dir | Symlink | Fifo | Device | Whiteout
NAME_MAX = 255


def tree(spec: dict[bytes | str, object], **attrs: object) -> Dir:
    """A ``Dir`` from a literal dict: str/bytes keys; bytes values are files, dicts are dirs."""
    children: dict[bytes, Node] = {}
    for name, value in spec.items():
        key = os.fsencode(name)
        if isinstance(value, bytes):
            children[key] = File(value)
        elif isinstance(value, dict):
            children[key] = tree(value)
        else:
            assert isinstance(value, File | Dir | Symlink | Fifo | Device | Whiteout), value
            children[key] = value
    return Dir(children, **attrs)  # type: ignore[arg-type]


def build_layer(root: Path | bytes, layer: Dir, kernel: bool) -> None:
    """Write *layer* at *root* (created here), with kernel markers if *kernel*."""
    root_b = os.fsencode(root)
    os.mkdir(root_b)
    links: dict[int, bytes] = {}
    _fill_dir(root_b, layer, kernel, links)
    _set_attrs(root_b, layer.uid, layer.gid, layer.mode, layer.xattrs)


def _fill_dir(path: bytes, d: Dir, kernel: bool, links: dict[int, bytes]) -> None:
    for name, node in sorted(d.children.items()):
        _make(path + b"/" + name, name, node, kernel, links)
    if d.opaque is not None:
        form = "trusted" if kernel else d.opaque
        assert d.opaque_value == b"y" or d.opaque != "wh", "a marker file is always opaque"
        if form == "wh":
            open(path + b"/.wh..wh..opq", "wb").close()
        else:
            os.setxattr(path, f"{form}.overlay.opaque", d.opaque_value)


def _make(path: bytes, name: bytes, node: Node, kernel: bool, links: dict[int, bytes]) -> None:
    if isinstance(node, Whiteout):
        marker = path[: -len(name)] + b".wh." + name
        # A .wh.NAME must itself fit in NAME_MAX; longer names can only use the device form.
        if kernel or node.form == "chr" or len(name) + 4 > NAME_MAX:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        else:
            open(marker, "wb").close()
    elif isinstance(node, File):
        if node.link is not None and node.link in links:
            os.link(links[node.link], path)
            return
        with open(path, "wb") as f:
            f.write(node.content)
        if node.link is not None:
            links[node.link] = path
        _set_attrs(path, node.uid, node.gid, node.mode, node.xattrs)
    elif isinstance(node, Dir):
        os.mkdir(path)
        _fill_dir(path, node, kernel, links)
        _set_attrs(path, node.uid, node.gid, node.mode, node.xattrs)
    elif isinstance(node, Symlink):
        os.symlink(node.target, path)
        os.lchown(path, node.uid, node.gid)
    elif isinstance(node, Fifo):
        os.mkfifo(path)
        _set_attrs(path, node.uid, node.gid, node.mode, {})
    elif isinstance(node, Device):
        kind = stat.S_IFCHR if node.char else stat.S_IFBLK
        os.mknod(path, kind | 0o600, os.makedev(node.major, node.minor))
        os.chmod(path, node.mode)
    else:  # pragma: no cover
        raise TypeError(node)


def _set_attrs(path: bytes, uid: int, gid: int, mode: int, xattrs: dict[str, bytes]) -> None:
    for key, value in sorted(xattrs.items()):
        os.setxattr(path, key, value, follow_symlinks=False)
    os.lchown(path, uid, gid)
    os.chmod(path, mode)  # after chown, which clears set-id bits


def build_stack(base: Path, layers: Sequence[Dir], kernel: bool) -> list[Path]:
    """Layers ``base/l0`` (the top one), ``base/l1``, ...; returns their paths, top first."""
    paths = []
    for i, layer in enumerate(layers):
        path = base / f"l{i}"
        build_layer(path, layer, kernel)
        paths.append(path)
    return paths


def fresh_dir(parent: Path, prefix: str = "d") -> Path:
    """A new, uniquely named directory below *parent*."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=parent))
