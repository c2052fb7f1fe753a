"""Layers, the stack they form, and the resolved entries of the merged view.

A ``Stack`` is an ordered list of layers, topmost first: the upper (if any), then the lowers
as given in ``lowerdir=`` (leftmost on top). A ``Resolved`` names one merged entry: its
path, the stack indices of the layers it is made of, and the lstat of the topmost of them.
Resolved values are immutable; whoever changes a layer makes new ones.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from unionfs import layerfmt
from unionfs.safepath import DirFdCache, LayerDir, join

WORK_SUBDIR = "work"
INDEX_SUBDIR = "unionfs-index"  # hard links that survive copy-up (see union.links)


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
    """What the rules need of a layer. ``None`` means "nothing there"; failures raise OSError."""

    root: str

    def lstat(self, path: bytes) -> StatLike | None: ...
    def scandir(self, path: bytes) -> Iterator[tuple[bytes, StatLike]]: ...
    def is_opaque(self, path: bytes) -> bool: ...
    def readlink(self, path: bytes) -> bytes: ...
    def open(self, path: bytes, flags: int, mode: int = 0) -> int: ...
    def getxattr(self, path: bytes, name: bytes) -> bytes | None: ...
    def listxattr(self, path: bytes) -> list[bytes]: ...
    def statvfs(self) -> os.statvfs_result: ...


class DirLayer(LayerDir):
    """A plain layer directory on disk, read through ``safepath``. ``opaque_xattrs``: the
    names its stack reads the opaque mark from (one namespace with ``userxattr``)."""

    opaque_xattrs: layerfmt.Prefixes = layerfmt.OPAQUE_XATTRS

    def is_opaque(self, path: bytes) -> bool:
        """Any of the three opaque forms marks directory *path* (which must exist)."""
        for xattr in self.opaque_xattrs:
            if layerfmt.is_opaque_value(self.dir_getxattr(path, xattr)):
                return True
        return self.lstat(join(path, layerfmt.OPAQUE_MARKER)) is not None


@dataclass(frozen=True, slots=True)
class Features:
    """The overlay features of one mount, as the kernel's mount options name them.

    ``redirect``: "on" (renaming a merged or lower directory records where its lower
    contents are, ``overlay.redirect``, and follows such records), "follow" (follows them,
    renames give EXDEV), "nofollow"/"off" (neither; "off" follows like the kernel's
    default redirect_always_follow=Y). ``metacopy``: attribute changes of a lower regular
    file copy up only its metadata (``overlay.metacopy``). ``index``: hard links of lower
    files survive a copy-up (see ``union.links``). ``userxattr``: the overlay's own xattrs
    (markers, records) are ``user.overlay.*`` only; ``trusted.overlay.*`` is plain data.
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


def _devices(layer: Layer) -> list[int]:
    """The st_dev of the directories *layer* is made of, top first: an index's merged
    lowers are several (``directories``), any other layer is one."""
    parts = getattr(layer, "directories", None) or [getattr(layer, "directory", layer)]
    found = []
    for part in parts:
        dev = getattr(part, "dev", None)
        if dev is None:
            root = part.lstat(b"")
            dev = None if root is None else root.st_dev
        if dev is not None:
            found.append(dev)
    return found


@dataclass(frozen=True, slots=True)
class Resolved:
    """One entry of the merged view.

    ``layers`` are stack indices, topmost first: one for a non-directory; for a directory,
    every layer whose same-named directory merges into it (down to the first opaque one);
    for a metacopy file (``overlay.metacopy``), the layer of its metadata and the layer of
    its data. ``st`` is the lstat of the entry in ``layers[0]``. ``paths``, when not None,
    is where the entry is in each of ``layers`` (a renamed directory's lower parts stay at
    their old path, found through ``overlay.redirect``); None means ``path`` in all.
    """

    path: bytes
    layers: tuple[int, ...]
    st: StatLike
    paths: tuple[bytes, ...] | None = None

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
        return dataclasses.replace(self, st=st)

    def under_upper(self, st: StatLike) -> Resolved:
        """This directory once copied up: the upper on top of its layers, ``st`` its lstat."""
        paths = None if self.paths is None else (self.path, *self.paths)
        return Resolved(self.path, (0, *self.layers), st, paths)

    def moved_to(self, path: bytes) -> Resolved:
        """This entry shown at *path* (an ancestor was renamed); its lower parts stay."""
        paths = tuple(path if i == 0 else self.path_in(i) for i in self.layers)
        return Resolved(path, self.layers, self.st, normal_paths(path, paths))

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


def normal_paths(path: bytes, paths: Sequence[bytes]) -> tuple[bytes, ...] | None:
    """*paths* for ``Resolved.paths``: None when every one is *path*."""
    return None if all(p == path for p in paths) else tuple(paths)


class Stack:
    """The layers of one mount, topmost first.

    Invariants: ``layers[0]`` is the upper when ``has_upper``, and then ``work`` is the
    overlay's private work directory on the same filesystem; lower layers are never written.
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
        self.links: DirLayer | None = None  # the hard link index (``union.links``)

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
                for dev in _devices(layer):
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
            close = getattr(layer, "close", None)
            if close is not None:
                close()
        if self._cache is not None:
            self._cache.close()

    def root(self) -> Resolved:
        """The merged root: the roots of all layers (the kernel ignores opaque on the root)."""
        st = self.layers[0].lstat(b"")
        assert st is not None
        return Resolved(b"", tuple(range(len(self.layers))), st)


def prepare_workdir(workdir: str) -> str:
    """``WORKDIR/work``, made afresh at every mount as the kernel does (ovl_workdir_create):
    what an earlier mount left is removed, and the new directory has mode 000 and no POSIX
    ACL, so nothing built in it inherits a default ACL of WORKDIR (a copy-up would keep it).

    ``work`` is examined and removed through the workdir's own descriptor: if it is not a
    real directory (a symlink, a file) it is removed, never followed.
    """
    return _subdir(workdir, WORK_SUBDIR, empty=True)


def prepare_subdir(workdir: str, name: str) -> str:
    """``WORKDIR/name`` as a real directory (made if missing, private as ``work`` is;
    anything else there, a symlink included, is removed, never followed). Its contents are
    kept."""
    return _subdir(workdir, name, empty=False)


ACL_XATTRS = (b"system.posix_acl_default", b"system.posix_acl_access")


def _subdir(workdir: str, name: str, empty: bool) -> str:
    cache = DirFdCache(8)
    parent = LayerDir(workdir, cache)
    raw = name.encode()
    try:
        st = parent.lstat(raw)
        if st is not None and (empty or not stat.S_ISDIR(st.st_mode)):
            if stat.S_ISDIR(st.st_mode) and not _usable(parent, raw):
                parent.chmod(raw, 0o700)  # an earlier mount's (mode 000), ours to empty
            parent.remove_tree(raw)
            st = None
        if st is None:
            parent.mkdir(raw, 0)
            _make_private(parent, raw)
    finally:
        parent.close()
        cache.close()
    return os.path.join(workdir, name)


def _make_private(parent: LayerDir, name: bytes) -> None:
    """No ACL and mode 000, as the kernel leaves its work directories; mode 700 where this
    process could not then use it (an unprivileged daemon has no CAP_DAC_OVERRIDE)."""
    for acl in ACL_XATTRS:
        try:
            parent.removexattr(name, acl)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                raise
    parent.chmod(name, 0)
    if not _usable(parent, name):
        parent.chmod(name, 0o700)


def _usable(parent: LayerDir, name: bytes) -> bool:
    base, last = parent.at(name)
    return os.access(last, os.W_OK | os.X_OK | os.R_OK, dir_fd=base)


def probe_style(work: LayerDir, userxattr: bool = False) -> layerfmt.MarkerStyle:
    """The kernel's marker forms where this filesystem and our privileges allow them; with
    *userxattr*, its user.overlay.* ones (as the kernel writes them then)."""
    name = b"#unionfs-probe-%d" % os.getpid()
    device = True
    try:
        work.mknod(name, stat.S_IFCHR, 0)
    except PermissionError:
        device = False
    else:
        work.unlink(name)
    if userxattr:
        return layerfmt.MarkerStyle(device, b"user.overlay.opaque", not device)
    xattr = b"trusted.overlay.opaque"
    work.mkdir(name, 0o700)
    try:
        work.setxattr(name, xattr, b"y")
    except OSError:
        xattr = b"user.overlay.opaque"
    finally:
        work.rmdir(name)
    if device and xattr.startswith(b"trusted."):
        return layerfmt.KERNEL_STYLE
    return layerfmt.MarkerStyle(device, xattr, not xattr.startswith(b"trusted."))
