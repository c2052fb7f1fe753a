"""Layers, the stack they form, and the resolved entries of the merged view.

A ``Stack`` is an ordered list of layers, topmost first: the upper (if any), then the lowers
as given in ``lowerdir=`` (leftmost on top). A ``Resolved`` names one merged entry: its
path, the stack indices of the layers it is made of, and the lstat of the topmost of them.
Resolved values are immutable; whoever changes a layer makes new ones.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from unionfs import layerfmt
from unionfs.safepath import DirFdCache, LayerDir, join
from unionfs.union.workdir import INDEX_SUBDIR, prepare_subdir, prepare_workdir, probe_style


class StatLike(Protocol):
    """The fields of ``os.stat_result`` the rules use; ``Attrs`` (from an index) has them too."""

    @property
    def st_mode(self) -> int: ...
    @property
    def st_ino(self) -> int: ...
    @property
    def st_dev(self) -> int: ...
    @property
    def st_nlink(self) -> int: ...
    @property
    def st_uid(self) -> int: ...
    @property
    def st_gid(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_rdev(self) -> int: ...
    @property
    def st_blksize(self) -> int: ...
    @property
    def st_blocks(self) -> int: ...
    @property
    def st_atime_ns(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_ctime_ns(self) -> int: ...


class Attrs(NamedTuple):
    """A stat result that did not come from ``lstat`` (an index serves these)."""

    st_mode: int
    st_ino: int
    st_dev: int
    st_nlink: int
    st_uid: int
    st_gid: int
    st_size: int
    st_rdev: int
    st_blksize: int
    st_blocks: int
    st_atime_ns: int
    st_mtime_ns: int
    st_ctime_ns: int


class Layer(Protocol):
    """What the rules need of a layer. ``None`` means "nothing there"; failures raise OSError.

    ``dir_getxattr`` is ``getxattr`` of a directory, which a layer may answer more cheaply
    (a directory on disk reads it through the descriptor its lookups keep open anyway).
    ``devices`` are the st_dev of the directories the layer is made of, top first (an
    index's merged lowers are several). ``close`` releases what the layer holds open.
    """

    root: str

    def lstat(self, path: bytes) -> StatLike | None: ...
    def scandir(self, path: bytes) -> Iterator[tuple[bytes, StatLike]]: ...
    def is_opaque(self, path: bytes) -> bool: ...
    def readlink(self, path: bytes) -> bytes: ...
    def open(self, path: bytes, flags: int, mode: int = 0) -> int: ...
    def getxattr(self, path: bytes, name: bytes) -> bytes | None: ...
    def dir_getxattr(self, path: bytes, name: bytes) -> bytes | None: ...
    def listxattr(self, path: bytes) -> list[bytes]: ...
    def statvfs(self) -> os.statvfs_result: ...
    def devices(self) -> list[int]: ...
    def close(self) -> None: ...


class DirLayer(LayerDir):
    """A plain layer directory on disk, read through ``safepath``. ``opaque_xattrs``: the
    names its stack reads the opaque mark from (one namespace with ``userxattr``)."""

    opaque_xattrs: layerfmt.Prefixes = layerfmt.OPAQUE_XATTRS

    def is_opaque(self, path: bytes) -> bool:
        """Directory *path* (which must exist) is opaque, in any of the three forms."""
        return layerfmt.is_opaque(
            lambda name: self.dir_getxattr(path, name),
            lambda: self.lstat(join(path, layerfmt.OPAQUE_MARKER)) is not None,
            self.opaque_xattrs,
        )

    def devices(self) -> list[int]:
        return [self.dev]


def xattr_of(layer: Layer, path: bytes, name: bytes, is_dir: bool) -> bytes | None:
    """xattr *name* of *path* in *layer* (a directory's through ``dir_getxattr``)."""
    return layer.dir_getxattr(path, name) if is_dir else layer.getxattr(path, name)


@dataclass(frozen=True, slots=True)
class Features:
    """The overlay features of one mount, as the kernel's mount options name them.

    ``redirect``: "on" (renaming a merged or lower directory records where its lower
    contents are, ``overlay.redirect``, and follows such records), "follow" (follows them,
    renames give EXDEV), "nofollow"/"off" (neither; "off" follows like the kernel's
    default redirect_always_follow=Y). ``metacopy``: attribute changes of a lower regular
    file copy up only its metadata (``overlay.metacopy``). ``index``: hard links of lower
    files survive a copy-up (see ``union.hardlinks``). ``userxattr``: the overlay's own
    xattrs (markers, records) are ``user.overlay.*`` only; ``trusted.overlay.*`` is plain
    data.
    """

    redirect: str = "off"
    metacopy: bool = False
    index: bool = False
    userxattr: bool = False  # the overlay's xattrs are user.overlay.* only

    @property
    def follow(self) -> bool:
        return self.redirect != "nofollow"

    @property
    def create_redirects(self) -> bool:
        return self.redirect == "on"


XINO_SHIFT = 56  # the bits of a shown inode number below a filesystem's place


@dataclass(frozen=True, slots=True)
class Resolved:
    """One entry of the merged view.

    ``layers`` are stack indices, topmost first: one for a non-directory; for a directory,
    every layer whose same-named directory merges into it (down to the first opaque one);
    for a metacopy file (``overlay.metacopy``), the layer of its metadata and the layer of
    its data. ``st`` is the lstat of the entry in ``layers[0]``. ``paths``, when not None,
    is where the entry is in each of ``layers`` (a renamed directory's lower parts stay at
    their old path, found through ``overlay.redirect``); None means ``path`` in all.
    ``index_copy``, with ``index=on``, is set on a lower name of a hard link whose file
    another name copied up: the key of that copy in the link index (``union.hardlinks``),
    which it shows (``st`` is the copy's lstat) until it is linked up in turn. Read an
    entry's metadata and data through ``Stack.meta_of``/``data_of``, which know this.
    """

    path: bytes
    layers: tuple[int, ...]
    st: StatLike
    paths: tuple[bytes, ...] | None = None
    index_copy: bytes | None = None

    def path_in(self, index: int) -> bytes:
        """Where this entry is in stack layer *index* (one of ``layers``)."""
        if self.paths is None:
            return self.path
        return self.paths[self.layers.index(index)]

    @property
    def top_path(self) -> bytes:
        return self.path if self.paths is None else self.paths[0]

    @property
    def metacopy(self) -> bool:
        """A file whose metadata is in ``top`` and whose data is still in ``data``."""
        return len(self.layers) > 1 and not self.is_dir

    @property
    def data(self) -> int:
        """The layer that holds this entry's data (a metacopy file's lower layer)."""
        return self.layers[-1]

    @property
    def data_path(self) -> bytes:
        return self.path_in(self.layers[-1])

    def with_st(self, st: StatLike) -> Resolved:
        # Not dataclasses.replace (several times slower): every getattr of an upper entry
        # and every change makes one.
        return Resolved(self.path, self.layers, st, self.paths, self.index_copy)

    def under_upper(self, st: StatLike) -> Resolved:
        """This directory once copied up: the upper on top of its layers, ``st`` its lstat."""
        paths = None if self.paths is None else (self.path, *self.paths)
        return Resolved(self.path, (0, *self.layers), st, paths)

    def moved_to(self, path: bytes) -> Resolved:
        """This entry shown at *path* (an ancestor was renamed); its lower parts stay."""
        paths = tuple(path if i == 0 else self.path_in(i) for i in self.layers)
        return Resolved(path, self.layers, self.st, normal_paths(path, paths), self.index_copy)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def top(self) -> int:
        return self.layers[0]

    @property
    def is_merged(self) -> bool:
        """A directory made of more than one layer (the kernel's OVL_TYPE_MERGE)."""
        return len(self.layers) > 1


@dataclass(frozen=True, slots=True)
class CopiedUp:
    """An entry a change copied up (a parent on the way, or the entry itself), or a
    metacopy file that got its data: how it resolved before, and how it resolves now."""

    before: Resolved
    after: Resolved


def upper_of(stack: Stack) -> LayerDir:
    if stack.upper is None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    return stack.upper


def normal_paths(path: bytes, paths: Sequence[bytes]) -> tuple[bytes, ...] | None:
    """*paths* for ``Resolved.paths``: None when every one is *path*."""
    return None if all(p == path for p in paths) else tuple(paths)


class Stack:
    """The layers of one mount, topmost first.

    Invariants: ``layers[0]`` is the upper when ``has_upper``, and then ``work`` is the
    overlay's private work directory on the same filesystem; lower layers are never written.
    Every copy-up is reported here until ``take_copies``: whoever keeps ``Resolved``
    values across changes (the FUSE inode table) must take them after each change.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        upper: DirLayer | None = None,
        work: DirLayer | None = None,
        style: layerfmt.MarkerStyle = layerfmt.KERNEL_STYLE,
        cache: DirFdCache | None = None,
        features: Features = Features(),
    ) -> None:
        if not layers and upper is None:
            raise ValueError("a stack needs at least one layer")
        self.layers: list[Layer] = ([upper] if upper is not None else []) + list(layers)
        self.upper = upper
        self.work = work
        self.style = style
        self._cache = cache  # owned: closed with the stack
        self._temp = 0
        self.features = features
        # Which xattrs are the overlay's own (hidden, never copied up, read as markers).
        self.private = layerfmt.private_prefixes(features.userxattr)
        self.xwhiteout_xattrs = layerfmt.xwhiteout_xattrs(self.private)
        if features.userxattr:
            for layer in self.layers:
                if isinstance(layer, DirLayer):
                    layer.opaque_xattrs = layerfmt.opaque_xattrs(self.private)
        # The overlay's private xattrs are read and written in one namespace: trusted.*
        # as root, user.* where trusted xattrs are refused (the kernel's userxattr).
        prefix = style.opaque_xattr[: -len(b"opaque")]
        self.redirect_xattr = prefix + b"redirect"
        self.metacopy_xattr = prefix + b"metacopy"
        self.ino_xattr = prefix + b"unionfs.ino"  # the number a copied-up entry keeps showing
        self._filesystems: dict[int, int] | None = None  # st_dev -> its place among the layers'
        self.links: DirLayer | None = None  # the hard link index (``union.hardlinks``)
        self._copies: list[CopiedUp] = []

    @property
    def has_upper(self) -> bool:
        return self.upper is not None

    def own_ino(self, st: StatLike) -> int | None:
        """The inode number the overlay shows for the file *st* of one of its layers, as
        the kernel shows it: the file's own number when every layer is on one filesystem;
        otherwise with the filesystem's place among the layers' in the top bits (the
        kernel's xino). None when the number does not leave room for them."""
        if self._filesystems is None:
            places: dict[int, int] = {}
            for layer in self.layers:
                for dev in layer.devices():
                    places.setdefault(dev, len(places))
            self._filesystems = places
        place = self._filesystems.get(st.st_dev)
        if place is None or st.st_ino >> XINO_SHIFT or place >> (63 - XINO_SHIFT):
            return None
        return st.st_ino | place << XINO_SHIFT

    @classmethod
    def from_dirs(
        cls,
        lowers: Sequence[str],
        upper: str | None = None,
        work: str | None = None,
        cache: DirFdCache | None = None,
        features: Features = Features(),
    ) -> Stack:
        """A stack over plain directories; with *upper*, *work* is required and prepared."""
        owned = DirFdCache() if cache is None else None
        cache = cache or owned
        assert cache is not None
        layers = [DirLayer(root, cache) for root in lowers]
        return cls.assemble(layers, upper, work, cache, owned is not None, features)

    @classmethod
    def assemble(
        cls,
        lowers: Sequence[Layer],
        upper: str | None,
        work: str | None,
        cache: DirFdCache,
        own_cache: bool = True,
        features: Features = Features(),
    ) -> Stack:
        """A stack of *lowers* (any layers) under an upper directory, if one is given."""
        owned = cache if own_cache else None
        if upper is None:
            return cls(lowers, cache=owned, features=features)
        if work is None:
            raise ValueError("an upper layer needs a work directory")
        upper_layer = DirLayer(upper, cache)
        upper_layer.noatime = True  # its atimes follow the mount's flags (union.atime)
        work_layer = DirLayer(prepare_workdir(work), cache)
        style = probe_style(work_layer, features.userxattr)
        stack = cls(lowers, upper_layer, work_layer, style, owned, features)
        if features.index:
            stack.links = DirLayer(prepare_subdir(work, INDEX_SUBDIR), cache)
        return stack

    def temp_name(self) -> bytes:
        """A fresh name in the work directory for something built before it is moved up."""
        self._temp += 1
        return b"#unionfs-%d-%d" % (os.getpid(), self._temp)

    def close(self) -> None:
        extra = [d for d in (self.work, self.links) if d is not None]
        for layer in self.layers + extra:
            layer.close()
        if self._cache is not None:
            self._cache.close()

    def copied(self, before: Resolved, after: Resolved) -> None:
        """Report that a change copied *before* up; it resolves as *after* now."""
        self._copies.append(CopiedUp(before, after))

    def take_copies(self) -> list[CopiedUp]:
        """What was copied up since the last call, in order (parents before children).
        Whoever keeps resolved entries takes these after every change, failed or not (a
        change may copy parents up before it fails): nothing else tells them."""
        copies, self._copies = self._copies, []
        return copies

    def meta_of(self, res: Resolved) -> tuple[Layer, bytes]:
        """Where *res*'s own file is (its xattrs, link target, private records): the
        layer and the path in it. An indexed copy's is in the link index."""
        if res.index_copy is not None:
            assert self.links is not None
            return self.links, res.index_copy
        return self.layers[res.top], res.top_path

    def data_of(self, res: Resolved) -> tuple[Layer, bytes]:
        """Where *res*'s data is (a metacopy file's is below its metadata)."""
        if res.index_copy is not None:
            assert self.links is not None
            return self.links, res.index_copy
        return self.layers[res.data], res.data_path

    def root(self) -> Resolved:
        """The merged root: the roots of all layers (the kernel ignores opaque on the root)."""
        st = self.layers[0].lstat(b"")
        assert st is not None
        return Resolved(b"", tuple(range(len(self.layers))), st)
