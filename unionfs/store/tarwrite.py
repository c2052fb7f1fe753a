"""Writing an upper directory as an OCI layer tarball, reproducibly.

Reads the upper only through ``safepath`` (never following a symlink) and reads every
marker form: character device 0/0 and ``.wh.NAME`` whiteouts become ``.wh.NAME`` entries;
``trusted.``/``user.overlay.opaque`` and ``.wh..wh..opq`` become one ``DIR/.wh..wh..opq``
entry. Private overlay xattrs are not exported; escaped ones are unescaped (what a user set).
The same tree always gives the same bytes: entries sorted (in each directory the markers
first, then names in byte order), numeric owners only, integer mtimes, no atime or ctime,
pax headers only where ustar cannot hold a field, gzip without name or time.
"""

from __future__ import annotations

import os
import stat
import tarfile
import typing
from collections.abc import Callable
from dataclasses import dataclass

from unionfs import layerfmt
from unionfs.errors import UserError
from unionfs.safepath import DirFdCache, LayerDir, join
from unionfs.store.compress import Compressor

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class LayerBlob:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    digest: str  # "sha256:<hex>" of the compressed blob as written
    size: int  # compressed size in bytes
    media_type: str  # "application/vnd.oci.image.layer.v1.tar+gzip" (or +zstd)


def _name(path: bytes) -> str:
    return os.fsdecode(path)


def _xattr_headers(layer: LayerDir, path: bytes, private: layerfmt.Prefixes) -> dict[str, str]:
    """The exported xattrs of *path* as pax records, sorted by name."""
    headers: dict[str, str] = {}
    for stored in sorted(layer.listxattr(path)):
        shown = layerfmt.shown_xattr(stored, private)
        if shown is None:
            continue  # an overlay marker (opaque, origin, impure...): not user data
        value = layer.getxattr(path, stored)
        if value is None:
            continue
        try:
            key = "SCHILY.xattr." + shown.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{_name(path)}: xattr name {shown!r} is not UTF-8") from None
        headers[key] = value.decode("utf-8", "surrogateescape")
    return headers


class _TarInfo(tarfile.TarInfo):
    """pax records written as Go's archive/tar writes them: xattr values as raw bytes,
    without the ``hdrcharset=BINARY`` record the stdlib adds for them (GNU tar warns
    about it and container tools ignore it)."""

    @classmethod
    def _create_pax_generic_header(
        cls, pax_headers: dict[str, str], type: bytes, encoding: str
    ) -> bytes:
        records = b""
        for keyword, value in pax_headers.items():
            key = keyword.encode("utf-8")
            val = value.encode("utf-8", "surrogateescape")
            length = len(key) + len(val) + 3  # " ", "=", "\n"
            size = 0
            while size != length + len(str(size)):  # the length counts its own digits
                size = length + len(str(size))
            records += str(size).encode("ascii") + b" " + key + b"=" + val + b"\n"
        info = {"name": "././@PaxHeader", "type": type, "size": len(records),
                "magic": tarfile.POSIX_MAGIC}  # fmt: skip
        header: bytes = cls._create_header(  # type: ignore[attr-defined]
            info, tarfile.USTAR_FORMAT, "ascii", "replace"
        )
        return header + cls._create_payload(records)  # type: ignore[attr-defined, no-any-return]


class _Writer:
    """One pass over the upper, writing tar entries as it goes."""

    def __init__(self, layer: LayerDir, tar: tarfile.TarFile, private: layerfmt.Prefixes) -> None:
        self.layer = layer
        self.tar = tar
        self.private = private  # the overlay's own xattr namespaces in this upper
        self.links: dict[tuple[int, int], str] = {}
        self.current = b""  # the path being written, for messages

    def _info(self, name: str, st: os.stat_result, type_: bytes) -> tarfile.TarInfo:
        info = _TarInfo(name)
        info.type = type_
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid = st.st_uid
        info.gid = st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        info.size = 0
        return info

    def _marker(self, name: str, st: os.stat_result) -> None:
        """A ``.wh.`` entry: an empty regular file with the permission bits, owner and
        mtime of what it stands for (the 0/0 device, the file, or the opaque directory)."""
        info = self._info(name, st, tarfile.REGTYPE)
        info.mode &= 0o777
        self.tar.addfile(info)

    def directory(self, path: bytes, st: os.stat_result | None) -> None:
        self.current = path
        entries = sorted(self.layer.scandir(path))
        names = {n for n, _ in entries}
        if st is not None:
            info = self._info(_name(path), st, tarfile.DIRTYPE)
            info.pax_headers = _xattr_headers(self.layer, path, self.private)
            self.tar.addfile(info)
        dir_st = st if st is not None else self.layer.lstat(b"")
        assert dir_st is not None
        if layerfmt.is_opaque(
            lambda name: self.layer.getxattr(path, name),
            lambda: layerfmt.OPAQUE_MARKER in names,
            layerfmt.opaque_xattrs(self.private),
        ):
            self._marker(_name(join(path, layerfmt.OPAQUE_MARKER)), dir_st)
        # Whiteouts before any sibling (the OCI spec's SHOULD), one per hidden name.
        whiteouts: dict[bytes, os.stat_result] = {}
        for name, child in entries:
            hidden = layerfmt.whited_out_name(name)
            if hidden is not None:  # any .wh. name hides, as union/readdir reads it
                whiteouts.setdefault(hidden, child)
            elif layerfmt.is_whiteout_device(child.st_mode, child.st_rdev):
                whiteouts.setdefault(name, child)
        for hidden in sorted(whiteouts):
            marker = join(path, layerfmt.whiteout_file_name(hidden))
            self._marker(_name(marker), whiteouts[hidden])
        for name, child in entries:
            if layerfmt.is_marker_name(name):
                continue  # written above (or AUFS metadata, never exported)
            if layerfmt.is_whiteout_device(child.st_mode, child.st_rdev):
                continue
            self.entry(join(path, name), child)

    def entry(self, path: bytes, st: os.stat_result) -> None:
        self.current = path
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            self.directory(path, st)
            return
        name = _name(path)
        if stat.S_ISSOCK(mode):
            return  # tar has no socket type (GNU tar skips them too)
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                info = self._info(name, st, tarfile.LNKTYPE)
                info.linkname = first
                self.tar.addfile(info)
                return
            self.links[key] = name
        if stat.S_ISREG(mode):
            info = self._info(name, st, tarfile.REGTYPE)
        elif stat.S_ISLNK(mode):
            info = self._info(name, st, tarfile.SYMTYPE)
            info.linkname = _name(self.layer.readlink(path))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info = self._info(name, st, tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info = self._info(name, st, tarfile.FIFOTYPE)
        else:
            raise UserError(f"{name}: cannot archive a file of type {stat.S_IFMT(mode):o}")
        info.pax_headers = _xattr_headers(self.layer, path, self.private)
        if not stat.S_ISREG(mode):
            self.tar.addfile(info)
            return
        info.size = st.st_size
        fd = self.layer.open(path, os.O_RDONLY)
        try:
            with open(fd, "rb", buffering=0, closefd=False) as src:
                self.tar.addfile(info, _Exactly(src, st.st_size, name))
        finally:
            os.close(fd)


class _Exactly:
    """Reads at most *size* bytes of *src*; a file that shrank while being archived is an
    error rather than a tar whose header promises more bytes than follow."""

    def __init__(self, src: typing.BinaryIO, size: int, name: str) -> None:
        self._src = src
        self._left = size
        self._name = name

    def read(self, n: int = -1) -> bytes:
        want = self._left if n < 0 else min(n, self._left)
        parts = []
        got = 0
        while got < want:
            data = self._src.read(want - got)
            if not data:
                raise UserError(f"{self._name}: file shrank while it was archived")
            parts.append(data)
            got += len(data)
        self._left -= got
        return b"".join(parts)

    def readinto(self, buffer: typing.Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def write_layer(upper: str, out: typing.BinaryIO, *, compression: str = "gzip",
                progress: Callable[[int], None] | None = None,
                userxattr: bool = False,
                tee: Callable[[bytes], None] | None = None) -> LayerBlob:  # fmt: skip
    """Tar the upper directory *upper* as an OCI layer into *out* (see the module doc).
    *progress* is called with each count of uncompressed tar bytes written. *userxattr*:
    the upper was written by a mount with that option (its markers are ``user.overlay.*``
    alone; ``trusted.overlay.*`` names are data and exported). *tee* is given the
    uncompressed tar too, in order."""
    sink = Compressor(out, compression, progress, tee)
    cache = DirFdCache()
    try:
        layer = LayerDir(upper, cache)
    except OSError as exc:
        cache.close()
        raise UserError(f"cannot read {upper}: {exc.strerror}") from None
    try:
        tar = tarfile.TarFile(
            fileobj=typing.cast(typing.IO[bytes], sink),
            mode="w",
            format=tarfile.PAX_FORMAT,
            encoding="utf-8",
            errors="surrogateescape",
            tarinfo=_TarInfo,
            copybufsize=_CHUNK,
        )
        writer = _Writer(layer, tar, layerfmt.private_prefixes(userxattr))
        try:
            writer.directory(b"", None)
        except OSError as exc:
            where = os.path.join(upper, _name(writer.current))
            raise UserError(f"cannot archive {where}: {exc.strerror or exc}") from None
        tar.close()
    finally:
        layer.close()
        cache.close()
    diff_id, digest, size = sink.finish()
    return LayerBlob(diff_id, digest, size, sink.media_type)
