"""``unionfs import`` and ``unionfs save``: images in and out of the store.

Import reads an OCI image layout (directory or tar archive), a ``docker save`` archive, or a
plain rootfs (directory or tarball, which becomes one layer). Every blob is copied into
``blobs/`` verified; the image is recorded by ``Store.add_image``. A refused import leaves
the store as it was: the blobs it added that no image uses are removed again.
Save writes an OCI image layout directory or an OCI archive (a tar of one, reproducible).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import tarfile
import typing
from collections.abc import Callable, Iterator

from unionfs.errors import UserError
from unionfs.store import ociformat
from unionfs.store._compat import layertar
from unionfs.store.blobs import sha256_bytes
from unionfs.store.images import Image, Store, Warn, normalize
from unionfs.store.meta import LayerRecord
from unionfs.store.ociformat import Descriptor, Source, blob_rel
from unionfs.store.progress import Progress

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PAX = tarfile.PAX_FORMAT
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def layer_media_type(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return ociformat.LAYER_GZIP
    if head.startswith(ZSTD_MAGIC):
        return ociformat.LAYER_ZSTD
    return ociformat.LAYER_TAR


class _Adding:
    """The blobs one import adds; removed again if the import fails and nothing uses them."""

    def __init__(self, store: Store, show_progress: bool | None) -> None:
        self.store = store
        self.added: list[str] = []
        self.show = show_progress

    def blob(self, stream: typing.BinaryIO, expected: str | None, size: int | None,
             label: str) -> str:  # fmt: skip
        if expected is not None and self.store.has_blob(expected):
            return expected
        progress = Progress(label, size, self.show)
        try:
            digest = self.store.add_blob(stream, expected, progress)
        finally:
            if progress.done_bytes and (size or 0) > 1 << 20:
                progress.done()
        self.added.append(digest)
        return digest

    def data(self, data: bytes) -> str:
        existed = self.store.has_blob(sha256_bytes(data))
        digest = self.store.blobs.add_bytes(data)
        if not existed:
            self.added.append(digest)
        return digest

    def undo(self) -> None:
        with self.store.locked():
            used: set[str] = set()
            for rec in self.store.meta.all_images():
                used.update((rec.manifest, rec.config, *rec.blobs))
            used.update(r.digest for r in self.store.meta.all_layers())
            for digest in self.added:
                if digest not in used:
                    self.store.blobs.remove(digest)


@contextlib.contextmanager
def _adding(store: Store, show_progress: bool | None) -> Iterator[_Adding]:
    adding = _Adding(store, show_progress)
    try:
        yield adding
    except BaseException:
        adding.undo()
        raise


# -- import -----------------------------------------------------------------------------------


def import_image(store: Store, src: str, name: str | None, warn: Warn,
                 show_progress: bool | None = None) -> Image:  # fmt: skip
    """Import *src* (see the module docstring) under *name* (or the name it carries)."""
    tag = None
    if not os.path.lexists(src) and ":" in src and os.path.exists(src.rsplit(":", 1)[0]):
        src, tag = src.rsplit(":", 1)
    if not os.path.exists(src):
        raise UserError(f"{src}: no such file or directory")
    if os.path.isdir(src):
        if os.path.isfile(os.path.join(src, "index.json")):
            return _from_layout(store, ociformat.DirSource(src), name, tag, warn, show_progress)
        if os.path.isfile(os.path.join(src, "manifest.json")):
            return _from_docker(store, ociformat.DirSource(src), name, tag, warn, show_progress)
        return _from_rootfs_dir(store, src, name, warn, show_progress)
    with open(src, "rb") as f:
        head = f.read(512)
    if head.startswith((GZIP_MAGIC, ZSTD_MAGIC)):
        return _from_rootfs_tar(store, src, name, warn, show_progress)
    try:
        tar = tarfile.open(src, "r:")  # noqa: SIM115 - closed by the with below
        source = ociformat.TarSource(src, tar)
    except (tarfile.TarError, EOFError):
        raise UserError(f"{src}: not a tar archive, or a truncated one") from None
    with tar:
        if not source.members:
            raise UserError(f"{src}: not a tar archive, or an empty one")
        if source.exists("index.json"):
            return _from_layout(store, source, name, tag, warn, show_progress)
        if source.exists("manifest.json"):
            return _from_docker(store, source, name, tag, warn, show_progress)
    return _from_rootfs_tar(store, src, name, warn, show_progress)


def _copy_blob(adding: _Adding, source: Source, desc: Descriptor, label: str) -> str:
    rel = blob_rel(desc.digest)
    if adding.store.has_blob(desc.digest):
        return desc.digest
    if not source.exists(rel):
        raise UserError(f"{source.label}: {label} names blob {desc.digest}, which is missing")
    with source.open(rel) as f:
        return adding.blob(f, desc.digest, desc.size, f"copying {desc.digest[7:19]}")


def _name_from(desc: Descriptor, src: str) -> str | None:
    full = desc.annotations.get(ociformat.FULL_NAME)
    if full:
        return full
    ref = desc.annotations.get(ociformat.REF_NAME)
    if ref and ("/" in ref or ":" in ref):
        return ref
    base = os.path.basename(os.path.normpath(src)).split(".")[0].lower() or "imported"
    return f"{base}:{ref}" if ref else base


def _from_layout(store: Store, source: Source, name: str | None, tag: str | None, warn: Warn,
                 show: bool | None) -> Image:  # fmt: skip
    if not source.exists(ociformat.LAYOUT_FILE):
        warn(f"{source.label}: no oci-layout file; reading it as an image layout anyway")
    descs = ociformat.parse_index(source.read_small("index.json"), f"{source.label}: index.json")
    top = desc = ociformat.pick(descs, source.label, tag)
    with _adding(store, show) as adding:
        if ociformat.is_index(desc):
            _copy_blob(adding, source, desc, "index.json")
            nested = ociformat.parse_index(store.blobs.read(desc.digest), f"index {desc.digest}")
            desc = ociformat.pick(nested, f"{source.label}: index {desc.digest[:19]}")
            if not ociformat.is_image_manifest(desc):
                raise UserError(f"{source.label}: nested indexes are not supported")
        _copy_blob(adding, source, desc, "index.json")
        what = f"{source.label}: manifest {desc.digest[:19]}"
        manifest = ociformat.parse_manifest(store.blobs.read(desc.digest), what)
        _copy_blob(adding, source, manifest.config, "the manifest")
        for layer in manifest.layers:
            _copy_blob(adding, source, layer, "the manifest")
        return store.add_image(desc.digest, name or _name_from(top, source.label), warn, show)


def _from_docker(store: Store, source: Source, name: str | None, tag: str | None, warn: Warn,
                 show: bool | None) -> Image:  # fmt: skip
    label = f"{source.label}: manifest.json"
    try:
        entries = json.loads(source.read_small("manifest.json"))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{label} is not valid JSON") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries or [0]):
        raise UserError(f"{label}: expected a list of images")
    if tag is not None:
        entries = [e for e in entries if any(t == tag or t.endswith(":" + tag)
                                             for t in e.get("RepoTags") or [])]  # fmt: skip
        if not entries:
            raise UserError(f"{label}: no image tagged {tag!r}")
    if len(entries) > 1:
        raise UserError(f"{label}: holds {len(entries)} images: name one as SRC:TAG")
    entry = entries[0]
    config_rel, layer_rels = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_rel, str) or not isinstance(layer_rels, list):
        raise UserError(f"{label}: an entry lacks Config or Layers")
    with _adding(store, show) as adding:
        for rel in [config_rel, *layer_rels]:
            if not isinstance(rel, str) or not source.exists(rel):
                raise UserError(f"{label} names {rel!r}, which is missing")
        with source.open(config_rel) as f:
            config_digest = adding.blob(f, None, None, "config")
        config_data = store.blobs.read(config_digest)
        ids = ociformat.diff_ids(ociformat.parse_config(config_data, f"{source.label}: config"))
        if len(ids) != len(layer_rels):
            raise UserError(f"{label}: {len(layer_rels)} layers, the config lists {len(ids)}")
        layers = []
        for rel in layer_rels:
            with source.open(rel) as f:
                head = f.read(4)
            with source.open(rel) as f:
                digest = adding.blob(f, None, None, f"copying {os.path.dirname(rel)[:12]}")
            layers.append(Descriptor(layer_media_type(head), digest, store.blobs.size(digest)))
        config = Descriptor(ociformat.OCI_CONFIG, config_digest, len(config_data))
        manifest = adding.data(ociformat.build_manifest(config, layers))
        tags = entry.get("RepoTags") or []
        default = tags[0] if tags and isinstance(tags[0], str) else None
        return store.add_image(manifest, name or default, warn, show)


def new_config(diff_id: str, created_by: str, base: dict[str, typing.Any] | None = None,
               comment: str | None = None) -> dict[str, typing.Any]:  # fmt: skip
    """A config: *base*'s with one layer appended (history too), or a fresh one-layer one."""
    created = now()
    step: dict[str, typing.Any] = {"created": created, "created_by": created_by}
    if comment:
        step["comment"] = comment
    if base is None:
        return {"architecture": arch(), "os": "linux", "created": created,
                "config": {"Env": [DEFAULT_PATH]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [step]}  # fmt: skip
    config: dict[str, typing.Any] = json.loads(json.dumps(base))
    config["created"] = created
    config["rootfs"]["diff_ids"] = [*config["rootfs"]["diff_ids"], diff_id]
    history = config.get("history")
    config["history"] = [*(history if isinstance(history, list) else []), step]
    return config


def finish_image(store: Store, adding: _Adding, layers: list[Descriptor],
                 config: dict[str, typing.Any], name: str | None, warn: Warn,
                 show: bool | None) -> Image:  # fmt: skip
    """Write *config* and a manifest for *layers* (blobs present, extracted), record it."""
    config_data = ociformat.dumps(config)
    config_desc = Descriptor(ociformat.OCI_CONFIG, adding.data(config_data), len(config_data))
    manifest = adding.data(ociformat.build_manifest(config_desc, layers))
    return store.add_image(manifest, name, warn, show)


def _from_rootfs_dir(store: Store, src: str, name: str | None, warn: Warn,
                     show: bool | None) -> Image:  # fmt: skip
    with _adding(store, show) as adding:
        blob = write_layer(store, adding, src, f"tarring {os.path.basename(src)}")
        store.ensure_layer(blob.digest, blob.media_type, blob.diff_id, warn, show)
        config = new_config(blob.diff_id, f"unionfs import {os.path.abspath(src)}")
        desc = Descriptor(blob.media_type, blob.digest, blob.size)
        return finish_image(store, adding, [desc], config, name or _base_name(src), warn, show)


def _from_rootfs_tar(store: Store, src: str, name: str | None, warn: Warn,
                     show: bool | None) -> Image:  # fmt: skip
    with _adding(store, show) as adding:
        with open(src, "rb") as f:
            head = f.read(4)
            f.seek(0)
            digest = adding.blob(typing.cast(typing.BinaryIO, f), None,
                                 os.fstat(f.fileno()).st_size, "copying")  # fmt: skip
        media = layer_media_type(head)
        diff_id = store.ensure_layer(digest, media, None, warn, show)
        config = new_config(diff_id, f"unionfs import {os.path.abspath(src)}")
        desc = Descriptor(media, digest, store.blobs.size(digest))
        return finish_image(store, adding, [desc], config, name or _base_name(src), warn, show)


def _base_name(src: str) -> str:
    base = os.path.basename(os.path.normpath(src)).split(".")[0].lower()
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in base) or "imported"


def write_layer(store: Store, adding: _Adding, upper: str, label: str) -> layertar.LayerBlob:
    """Tar *upper* into a new blob (verified as written); the LayerBlob."""
    progress = Progress(label, None, adding.show)
    with store.blobs.writer() as out:
        blob = layertar.write_layer(upper, typing.cast(typing.BinaryIO, out), progress=progress)
    if progress.done_bytes:
        progress.done()
    if out.digest != blob.digest:
        store.blobs.remove(out.digest)
        raise UserError(f"internal error: layer tar digest {blob.digest} != written {out.digest}")
    adding.added.append(blob.digest)
    return blob


# -- save -------------------------------------------------------------------------------------


def _descriptor(store: Store, image: Image, name: str | None) -> Descriptor:
    data = store.blobs.read(image.digest)
    media = json.loads(data).get("mediaType", ociformat.OCI_MANIFEST)
    annotations = {}
    if name:
        annotations = {ociformat.FULL_NAME: name, ociformat.REF_NAME: name.rsplit(":", 1)[1]}
    return Descriptor(media, image.digest, len(data), annotations,
                      {"architecture": str(store.config(image).get("architecture", arch())),
                       "os": str(store.config(image).get("os", "linux"))})  # fmt: skip


def _blobs_of(store: Store, image: Image) -> list[str]:
    return [image.digest, image.record.config, *image.record.blobs]


def _name_for(store: Store, ref: str, image: Image) -> str | None:
    with contextlib.suppress(UserError):
        if normalize(ref) in image.names:
            return normalize(ref)
    return image.names[0] if image.names else None


def save_layout(store: Store, ref: str, dest: str, show: bool | None = None) -> Descriptor:
    """Write the image into the layout directory *dest* (created, or an existing layout to
    which it is added; an entry with the same name is replaced)."""
    image = store.resolve(ref)
    desc = _descriptor(store, image, _name_for(store, ref, image))
    entries: list[Descriptor] = []
    if os.path.exists(dest):
        if not os.path.isdir(dest):
            raise UserError(f"{dest} exists and is not a directory")
        if os.listdir(dest):
            if not os.path.isfile(os.path.join(dest, ociformat.LAYOUT_FILE)):
                raise UserError(f"{dest} is not empty and not an OCI image layout")
            with open(os.path.join(dest, "index.json"), "rb") as f:
                entries = ociformat.parse_index(f.read(), f"{dest}/index.json")
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
    ref_name = desc.annotations.get(ociformat.REF_NAME)
    kept = [e for e in entries if e.digest != desc.digest
            and (ref_name is None or e.annotations.get(ociformat.REF_NAME) != ref_name)]
    _write_file(os.path.join(dest, "index.json"), ociformat.build_index([*kept, desc]))
    return desc


def _write_file(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def save_archive(store: Store, ref: str, out_path: str, show: bool | None = None) -> Descriptor:
    """Write the image as an OCI archive (a tar of a layout) to *out_path*, reproducibly:
    fixed order, owners, modes and times."""
    image = store.resolve(ref)
    desc = _descriptor(store, image, _name_for(store, ref, image))
    tmp = f"{out_path}.tmp-{os.getpid()}"
    total = sum(store.blobs.size(d) for d in _blobs_of(store, image))
    progress = Progress("saving", total, show)
    try:
        with open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w:", format=PAX) as tar:
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            for digest in sorted(set(_blobs_of(store, image))):
                with open(store.blobs.path(digest), "rb") as blob:
                    _add_file(tar, blob_rel(digest), store.blobs.size(digest),
                              _Counting(typing.cast(typing.BinaryIO, blob), progress))  # fmt: skip
            index = ociformat.build_index([desc])
            _add_bytes(tar, "index.json", index)
            _add_bytes(tar, ociformat.LAYOUT_FILE, ociformat.LAYOUT_VERSION)
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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
    import io

    _add_file(tar, name, len(data), io.BytesIO(data))


def import_layer(store: Store, path: str, warn: Warn, show: bool | None = None) -> LayerRecord:
    """``unionfs import-layer FILE``: a layer tarball (gzip, zstd or plain) into the store."""
    with _adding(store, show) as adding:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0)
            digest = adding.blob(typing.cast(typing.BinaryIO, f), None,
                                 os.fstat(f.fileno()).st_size, "copying")  # fmt: skip
        media = layer_media_type(head)
        diff_id = store.ensure_layer(digest, media, None, warn, show)
        rec = LayerRecord(diff_id, digest, store.blobs.size(digest), media)
        store.record_layer(rec)
        return store.meta.layer(diff_id) or rec
