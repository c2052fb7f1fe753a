"""OCI layer tarballs <-> layer directories: the store's one door to the tar format.

This module applies (extracts) one layer, ``memberattrs`` setting each entry's attributes;
``tarwrite`` writes one, ``tarread`` parses the stream, ``compress`` tells gzip/zstd/tar
apart, ``changes`` lists an upper's changes the way ``docker diff`` does; their public
names are re-exported here.

Extraction never writes outside ``dest``: every entry is created by an ``*at`` call on a
directory descriptor opened with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``
(``unionfs.safepath``), and a table of what this layer created refuses, before any
syscall, a name that passes through a symlink or a file. OCI markers become the markers
of the ``MarkerStyle`` asked for. Within one layer a later entry replaces an earlier one
only where the OCI spec's "changeset over existing files" allows it: two directories
merge (the later attributes win), a non-directory replaces a non-directory; a directory
and a non-directory under one name are refused.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import typing
from collections.abc import Callable
from enum import Enum

from unionfs import layerfmt
from unionfs.errors import UserError
from unionfs.layerfmt import MarkerStyle
from unionfs.safepath import DirFdCache, LayerDir, join, split
from unionfs.store.compress import MEDIA_TYPES, open_layer
from unionfs.store.memberattrs import MemberAttrs
from unionfs.store.tarread import (
    BLOCKDEV,
    CHAR,
    DIRECTORY,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    Member,
    TarStream,
    normalize,
    show,
)
from unionfs.store.tarwrite import LayerBlob, write_layer
from unionfs.store.upperdiff import changes

__all__ = ["LAYER_ROOT_MODE", "MEDIA_TYPES", "LayerBlob", "changes", "extract_layer", "open_layer",
           "write_layer"]


class Kind(Enum):
    DIR = "a directory"
    IMPLICIT = "a parent directory"  # one the archive never listed itself
    FILE = "a file"
    SYMLINK = "a symlink"
    WHITEOUT = "a whiteout"
    SKIPPED = "a skipped device node"


_DIRS = (Kind.DIR, Kind.IMPLICIT)
_TYPE_NAMES = {
    REGULAR: "a regular file",
    HARDLINK: "a hard link",
    SYMLINK: "a symlink",
    CHAR: "a character device",
    BLOCKDEV: "a block device",
    DIRECTORY: "a directory",
    FIFO: "a fifo",
}
# A layer's root is never more open than this, whatever its ``./`` entry says (07777 would
# make it writable by every user of the machine, and set-id).
LAYER_ROOT_MODE = 0o755


def _is_aufs_metadata(name: bytes) -> bool:
    return name.startswith(b".wh..wh.") and name != layerfmt.OPAQUE_MARKER


class _Extractor:
    """Applies members to an empty directory. Invariant: ``kinds`` holds exactly the
    paths this layer has made (markers included), so every check is a table lookup."""

    def __init__(self, layer: LayerDir, style: MarkerStyle, warn: Callable[[str], None],
                 reserve: Callable[[int, Member], None] | None = None):  # fmt: skip
        self.reserve = reserve
        self.layer = layer
        self.style = style
        self.warn = warn
        self.kinds: dict[bytes, Kind] = {b"": Kind.DIR}
        self.dir_attrs: dict[bytes, Member] = {}
        self.opaque: set[bytes] = set()
        self._warned: set[str] = set()
        self.attrs = MemberAttrs(layer, warn, self._warn_once)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)

    # -- markers -------------------------------------------------------------------------
    def _make_whiteout(self, path: bytes, member: Member) -> None:
        """A whiteout for *path* in the style asked for, with the permission bits, owner
        and mtime of the entry that stands for it (so that writing this layer again
        gives the same ``.wh.`` entry)."""
        marker = path
        if self.style.device_whiteouts:
            try:
                self.layer.mknod(path, stat.S_IFCHR, 0)
            except PermissionError:
                self._warn_once("wh", "cannot create 0/0 whiteout devices: using .wh. files")
                self.style = MarkerStyle(False, self.style.opaque_xattr, self.style.opaque_file)
        if not self.style.device_whiteouts:
            parent, name = split(path)
            marker = join(parent, layerfmt.whiteout_file_name(name))
            os.close(self.layer.create(marker, os.O_WRONLY, 0))
        self.attrs.on_path(marker, dataclasses.replace(member, mode=member.mode & 0o777, xattrs={}))

    def _remove_whiteout(self, path: bytes) -> None:
        parent, name = split(path)
        marker = join(parent, layerfmt.whiteout_file_name(name))
        self.layer.unlink(path if self.layer.lstat(marker) is None else marker)

    def _set_opaque(self, path: bytes) -> None:
        if path in self.opaque:
            return
        self.opaque.add(path)
        self.layer.setxattr(path, self.style.opaque_xattr, b"y")
        if self.style.opaque_file:
            os.close(self.layer.create(join(path, layerfmt.OPAQUE_MARKER), os.O_WRONLY, 0))

    # -- placing an entry ----------------------------------------------------------------
    def _mkdir(self, path: bytes) -> None:
        self.layer.mkdir(path, 0o700)  # opened up by finish(), after the children

    def _parents(self, member: Member) -> None:
        """Make sure every parent of *member* is a directory of this layer."""
        if self.kinds.get(split(member.path)[0]) in _DIRS:
            return  # a directory here was placed with all its parents, and stays one
        parts = member.path.split(b"/")[:-1]
        path = b""
        for part in parts:
            path = join(path, part)
            kind = self.kinds.get(path)
            if kind in _DIRS:
                continue
            if kind is None or kind is Kind.WHITEOUT:
                if kind is Kind.WHITEOUT:
                    self._remove_whiteout(path)
                self._mkdir(path)
                self.kinds[path] = Kind.IMPLICIT
                if kind is Kind.WHITEOUT:
                    self._set_opaque(path)
                continue
            through = "through" if kind is Kind.SYMLINK else "below"
            raise UserError(
                f"{show(member.name)}: refused, its path goes {through} "
                f"{show(path)}, {kind.value} of this layer"
            )

    def _place(self, member: Member, is_dir: bool) -> Kind | None:
        """Clear the way for *member*; what this layer held at its path before (a
        directory stays, a whiteout or a non-directory is gone)."""
        self._parents(member)
        path = member.path
        old = self.kinds.get(path)
        if old is None:
            return None
        if old is Kind.WHITEOUT:
            self._remove_whiteout(path)
            del self.kinds[path]
            return old
        if (old in _DIRS) != is_dir:
            new = _TYPE_NAMES[member.type]
            raise UserError(f"{show(member.name)}: conflicting entries, {old.value} and then {new}")
        if is_dir:
            return old
        if old is not Kind.SKIPPED:
            self.layer.unlink(path)  # a non-directory replaces a non-directory (OCI)
        del self.kinds[path]
        return old

    # -- members -------------------------------------------------------------------------
    def apply(self, member: Member, stream: TarStream) -> None:
        path = member.path
        parent, name = split(path)
        if any(_is_aufs_metadata(part) for part in path.split(b"/")):
            return  # AUFS metadata (.wh..wh.plnk/, .wh..wh.aufs): not content (as docker)
        if name == layerfmt.OPAQUE_MARKER:
            self._opaque_entry(member)
        elif layerfmt.is_marker_name(name):
            self._whiteout_entry(member, name)
        elif any(layerfmt.is_marker_name(p) for p in parent.split(b"/")):
            raise UserError(f"{show(member.name)}: a '.wh.' directory cannot hold entries")
        elif member.type == DIRECTORY:
            self._directory(member)
        elif not path:
            raise UserError(f"{show(member.name)}: the layer root must be a directory")
        elif member.type == REGULAR:
            self._regular(member, stream)
        elif member.type == HARDLINK:
            self._hardlink(member)
        elif member.type == SYMLINK:
            self._place(member, False)
            self.layer.symlink(member.linkname, path)
            self.kinds[path] = Kind.SYMLINK
            self.attrs.on_path(path, member, symlink=True)
        elif member.type == CHAR and member.devmajor == member.devminor == 0:
            self._whiteout(member, path)  # an overlay whiteout stored as it is on disk
        else:
            self._special(member)

    def _opaque_entry(self, member: Member) -> None:
        if member.type != REGULAR:
            raise UserError(f"{show(member.name)}: an opaque marker must be a regular file")
        directory = split(member.path)[0]
        self._parents(member)
        self._set_opaque(directory)

    def _whiteout_entry(self, member: Member, name: bytes) -> None:
        hidden = layerfmt.whited_out_name(name)
        if member.type != REGULAR:
            raise UserError(f"{show(member.name)}: a '.wh.' name must be a regular file")
        if hidden is None or hidden in (b".", b".."):
            raise UserError(f"{show(member.name)}: a whiteout that names no entry")
        self._whiteout(member, join(split(member.path)[0], hidden))

    def _whiteout(self, member: Member, hidden: bytes) -> None:
        self._parents(member)
        kind = self.kinds.get(hidden)
        if kind is None:
            self._make_whiteout(hidden, member)
            self.kinds[hidden] = Kind.WHITEOUT
        elif kind in _DIRS:
            # The OCI whiteout hides only what lower layers hold: this layer's own
            # directory stays, and nothing below may show through it.
            self._set_opaque(hidden)

    def _directory(self, member: Member) -> None:
        path = member.path
        old = self._place(member, True) if path else Kind.DIR
        if old not in _DIRS:
            self._mkdir(path)
        if old is Kind.WHITEOUT:
            self._set_opaque(path)  # deleted below and made again here: nothing shows
        self.kinds[path] = Kind.DIR
        self.dir_attrs[path] = member

    def _regular(self, member: Member, stream: TarStream) -> None:
        path = member.path
        self._place(member, False)
        fd = self.layer.create(path, os.O_WRONLY, 0o600)
        try:
            self.kinds[path] = Kind.FILE
            for chunk in stream.data(member):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if self.reserve is not None:
                self.reserve(fd, member)
            self.attrs.on_fd(fd, member)
        finally:
            os.close(fd)

    def _hardlink(self, member: Member) -> None:
        path = member.path
        target = normalize(member.linkname, f"{show(member.name)}: hard link target")
        kind = self.kinds.get(target)
        if kind is None or kind in _DIRS or kind is Kind.WHITEOUT or target == path:
            what = "itself" if target == path else "a path not in this layer"
            if kind in _DIRS:
                what = "a directory"
            raise UserError(f"{show(member.name)}: hard link to {show(member.linkname)}, {what}")
        self._place(member, False)
        if kind is Kind.SKIPPED:
            self.kinds[path] = Kind.SKIPPED
            self.warn(f"skipped {show(member.name)}: a hard link to a skipped device node")
            return
        self.layer.link(target, path)
        self.kinds[path] = kind

    def _special(self, member: Member) -> None:
        path = member.path
        fmt = {CHAR: stat.S_IFCHR, BLOCKDEV: stat.S_IFBLK, FIFO: stat.S_IFIFO}[member.type]
        self._place(member, False)
        try:
            self.layer.mknod(path, fmt | 0o600, os.makedev(member.devmajor, member.devminor))
        except PermissionError as exc:
            if member.type == FIFO:
                raise
            self.kinds[path] = Kind.SKIPPED
            self.warn(f"skipped device node {show(member.name)}: {exc.strerror}")
            return
        self.kinds[path] = Kind.FILE
        self.attrs.on_path(path, member)

    def finish(self) -> None:
        """Directory attributes last, deepest first: a directory's own mtime and a
        read-only mode must not be disturbed by the children made inside it."""
        for path in sorted(self.kinds, key=lambda p: -p.count(b"/") - (1 if p else 0)):
            if self.kinds[path] not in _DIRS:
                continue
            member = self.dir_attrs.get(path)
            if member is None:
                if path:
                    self.layer.chmod(path, 0o755)
                continue
            if not path:
                member = dataclasses.replace(member, mode=member.mode & LAYER_ROOT_MODE)
            self.attrs.on_path(path, member)


def _check_empty(dest: str) -> None:
    try:
        if os.listdir(dest):
            raise UserError(f"cannot extract a layer into {dest}: the directory is not empty")
    except OSError as exc:
        raise UserError(f"cannot extract a layer into {dest}: {exc.strerror}") from None


def extract_layer(stream: typing.BinaryIO, dest: str, style: MarkerStyle, *,
                  warn: Callable[[str], None],
                  progress: Callable[[int], None] | None = None,
                  reserve: Callable[[int, Member], None] | None = None) -> str:  # fmt: skip
    """Apply the OCI layer tar read from *stream* (already decompressed, see
    ``open_layer``) to the empty directory *dest*, and return its diff_id
    (``sha256:<hex>`` of every byte of the stream, read to its end). *progress* is called
    with each count of bytes read; *reserve* with each regular file's fd and member after
    its data, before its attributes (a lazy layer's placeholders get their size there).
    UserError (one line) for unsafe or broken input; the
    caller removes *dest* then."""
    _check_empty(dest)
    cache = DirFdCache()
    layer = LayerDir(dest, cache)
    tar = TarStream(stream, progress)
    extractor = _Extractor(layer, style, warn, reserve)
    member: Member | None = None
    try:
        while (member := tar.next()) is not None:
            extractor.apply(member, tar)
        extractor.finish()
        return tar.finish()
    except OSError as exc:
        where = show(member.name) if member is not None else dest
        raise UserError(f"{where}: {exc.strerror or exc}") from None
    except (ValueError, OverflowError) as exc:  # a NUL in a link name, an owner past 2**32
        where = show(member.name) if member is not None else dest
        raise UserError(f"{where}: a value out of range in the archive ({exc})") from None
    finally:
        layer.close()
        cache.close()
