"""``unionfs save``: an image out of the store as an OCI image layout directory or an OCI
archive (a tar of a layout; reproducible: the same image gives the same bytes); and
``unionfs export-layer``: one layer's blob as it is stored.

Blobs are copied, never hard-linked (a change to the copy must not reach the store).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import typing
from collections.abc import Callable

from unionfs import imageformat
from unionfs.errors import UserError
from unionfs.imageformat import Descriptor
from unionfs.store import ociformat
from unionfs.store.images import Image, ImageStore
from unionfs.store.importer import arch
from unionfs.store.naming import name_for
from unionfs.store.ociformat import blob_rel
from unionfs.store.progress import Progress

PAX = tarfile.PAX_FORMAT


def _descriptor(store: ImageStore, image: Image, name: str | None) -> Descriptor:
    data = store.blobs.read(image.digest)
    media = json.loads(data).get("mediaType", imageformat.OCI_MANIFEST)
    annotations = {}
    if name:
        annotations = {imageformat.FULL_NAME: name, imageformat.REF_NAME: name.rsplit(":", 1)[1]}
    return Descriptor(media, image.digest, len(data), annotations,
                      {"architecture": str(store.config(image).get("architecture", arch())),
                       "os": str(store.config(image).get("os", "linux"))})  # fmt: skip


def _blobs_of(store: ImageStore, image: Image) -> list[str]:
    return [image.digest, image.record.config, *image.record.blobs]


def _name_for(store: ImageStore, ref: str, image: Image) -> str | None:
    named = name_for(ref, {n: image.digest for n in image.names})
    return named or (image.names[0] if image.names else None)


def save_layout(store: ImageStore, ref: str, dest: str, show: bool | None = None,
                name: str | None = None) -> Descriptor:  # fmt: skip
    """Write the image into the layout directory *dest* (created, or an existing layout to
    which it is added; an entry with the same name is replaced), named *name* there (by
    default the name *ref* resolved through)."""
    image = store.resolve(ref)
    desc = _descriptor(store, image, name or _name_for(store, ref, image))
    entries: list[Descriptor] = []
    if os.path.exists(dest):
        if not os.path.isdir(dest):
            raise UserError(f"{dest} exists and is not a directory")
        if os.listdir(dest):
            if not os.path.isfile(os.path.join(dest, ociformat.LAYOUT_FILE)):
                raise UserError(f"{dest} is not empty and not an OCI image layout")
            with open(os.path.join(dest, "index.json"), "rb") as f:
                entries = imageformat.parse_index(f.read(), f"{dest}/index.json")
    blob_dir = os.path.join(dest, "blobs", "sha256")
    os.makedirs(blob_dir, exist_ok=True)
    progress = Progress("saving", sum(store.blobs.size(d) for d in _blobs_of(store, image)), show)
    for digest in _blobs_of(store, image):
        target = os.path.join(dest, blob_rel(digest))
        size = store.blobs.size(digest)
        if not (os.path.isfile(target) and os.path.getsize(target) == size):
            store.blobs.copy_to(digest, target)
        progress(size)
    if progress.done_bytes > 1 << 20:
        progress.done()
    _write_file(os.path.join(dest, ociformat.LAYOUT_FILE), ociformat.LAYOUT_VERSION)
    ref_name = desc.annotations.get(imageformat.REF_NAME)
    kept = [e for e in entries if e.digest != desc.digest
            and (ref_name is None or e.annotations.get(imageformat.REF_NAME) != ref_name)]
    _write_file(os.path.join(dest, "index.json"), imageformat.build_index([*kept, desc]))
    return desc


def _write_file(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def save_archive(store: ImageStore, ref: str, out_path: str,
                 show: bool | None = None) -> Descriptor:  # fmt: skip
    """Write the image as an OCI archive to the file *out_path*, replaced whole."""
    tmp = f"{out_path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            desc = write_archive(store, ref, typing.cast(typing.BinaryIO, f), show)
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return desc


def write_archive(store: ImageStore, ref: str, out: typing.BinaryIO, show: bool | None = None,
                  name: str | None = None) -> Descriptor:  # fmt: skip
    """Write the image as an OCI archive (a tar of a layout) to the stream *out* (a pipe
    will do: it is never sought), reproducibly: fixed order, owners, modes and times;
    named *name* in it (by default the name *ref* resolved through)."""
    image = store.resolve(ref)
    desc = _descriptor(store, image, name or _name_for(store, ref, image))
    total = sum(store.blobs.size(d) for d in _blobs_of(store, image))
    progress = Progress("saving", total, show)
    with tarfile.open(fileobj=out, mode="w|", format=PAX) as tar:
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for digest in sorted(set(_blobs_of(store, image))):
            with open(store.blobs.path(digest), "rb") as blob:
                _add_file(tar, blob_rel(digest), store.blobs.size(digest),
                          _Counting(typing.cast(typing.BinaryIO, blob), progress))  # fmt: skip
        index = imageformat.build_index([desc])
        _add_bytes(tar, "index.json", index)
        _add_bytes(tar, ociformat.LAYOUT_FILE, ociformat.LAYOUT_VERSION)
    if progress.done_bytes > 1 << 20:
        progress.done()
    return desc


class _Counting:
    def __init__(self, f: typing.BinaryIO, progress: Callable[[int], None]) -> None:
        self.f = f
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.progress(len(data))
        return data


def _info(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name, tarfile.DIRTYPE, 0, 0o755))


def _add_file(tar: tarfile.TarFile, name: str, size: int, f: object) -> None:
    tar.addfile(_info(name, tarfile.REGTYPE, size, 0o644), typing.cast(typing.BinaryIO, f))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    _add_file(tar, name, len(data), io.BytesIO(data))


def export_layer(store: ImageStore, ref: str, out: typing.BinaryIO) -> str:
    """Copy the blob of layer *ref* (diff_id or blob digest, or a prefix) to *out*; its digest."""
    rec = store.find_layer(ref)
    with open(store.blobs.path(rec.digest), "rb") as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
    return rec.digest
