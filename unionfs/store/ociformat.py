"""Reading OCI image layouts, from a directory or a tar archive of one (``oci-archive``,
``docker save``): files by relative path, and which image of an index to import.

Parsing never trusts a name from the input as a path: members are found by cleaned
relative paths, blobs by digests checked by ``unionfs.imageformat``. The formats
themselves (descriptors, manifests, configs) are ``imageformat``'s. Nothing here writes to
the store; ``images``, ``importer`` and ``exporter`` do.
"""

from __future__ import annotations

import os
import stat
import tarfile
import typing

from unionfs.errors import UserError
from unionfs.imageformat import (
    FULL_NAME,
    REF_NAME,
    Descriptor,
    check_digest,
    is_image_manifest,
    is_index,
    platform_of,
)

LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


class Source(typing.Protocol):
    """Files of an image layout or a ``docker save`` archive, by relative path."""

    label: str

    def exists(self, rel: str) -> bool: ...
    def open(self, rel: str) -> typing.BinaryIO: ...
    def read_small(self, rel: str, limit: int = 16 << 20) -> bytes: ...


def _clean(rel: str) -> str:
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UserError(f"refusing path {rel!r}: it leaves the archive")
    return "/".join(parts)


def _read_limited(f: typing.BinaryIO, rel: str, label: str, limit: int) -> bytes:
    data = f.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"{label}: {rel} is too large for a manifest or config")
    return data


class DirSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self.label = path

    def _full(self, rel: str) -> str:
        return os.path.join(self.path, _clean(rel))

    def exists(self, rel: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self._full(rel)).st_mode)
        except OSError:
            return False

    def open(self, rel: str) -> typing.BinaryIO:
        try:
            return open(self._full(rel), "rb")
        except FileNotFoundError:
            raise UserError(f"{self.label}: {_clean(rel)} is missing") from None

    def read_small(self, rel: str, limit: int = 16 << 20) -> bytes:
        with self.open(rel) as f:
            return _read_limited(f, rel, self.label, limit)


class TarSource:
    """An uncompressed tar (``oci-archive``, ``docker save``): members read in place."""

    def __init__(self, path: str, tar: tarfile.TarFile) -> None:
        self.label = path
        self.tar = tar
        self.members: dict[str, tarfile.TarInfo] = {}
        for info in tar.getmembers():
            name = _clean(info.name)
            if info.isreg():
                self.members[name] = info

    def exists(self, rel: str) -> bool:
        return _clean(rel) in self.members

    def open(self, rel: str) -> typing.BinaryIO:
        info = self.members.get(_clean(rel))
        f = None if info is None else self.tar.extractfile(info)
        if f is None:
            raise UserError(f"{self.label}: {_clean(rel)} is missing")
        return typing.cast(typing.BinaryIO, f)

    def read_small(self, rel: str, limit: int = 16 << 20) -> bytes:
        with self.open(rel) as f:
            data = _read_limited(f, rel, self.label, limit)
        if len(data) != self.members[_clean(rel)].size:
            raise UserError(f"{self.label}: truncated archive ({rel} is cut short)")
        return data


def blob_rel(digest: str) -> str:
    return f"blobs/sha256/{check_digest(digest)}"



def pick(descs: list[Descriptor], label: str, tag: str | None = None) -> Descriptor:
    """The one manifest (or nested index) to import from a layout's index.json: the one
    whose ref name is *tag* if given; else the only one, else the linux/amd64 one."""
    if tag is not None:
        named = [d for d in descs
                 if tag in (d.annotations.get(REF_NAME), d.annotations.get(FULL_NAME))]  # fmt: skip
        if not named:
            raise UserError(f"{label}: no image named {tag!r} in index.json")
        descs = named
    candidates = [d for d in descs if is_image_manifest(d) or is_index(d)]
    if not candidates:
        raise UserError(f"{label}: index.json names no image manifest")
    if len(candidates) == 1:
        return candidates[0]
    amd64 = [d for d in candidates if platform_of(d) == "linux/amd64"]
    if len(amd64) == 1:
        return amd64[0]
    names = sorted({d.annotations.get(REF_NAME, d.digest[:19]) for d in candidates})
    raise UserError(f"{label}: holds {len(candidates)} images ({', '.join(names[:5])}): "
                    "name one as SRC:TAG")  # fmt: skip
