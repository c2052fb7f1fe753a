"""``unionfs import`` and ``import-layer``: images and layers into the store; new images.

Import reads an OCI image layout (directory or tar archive), a ``docker save`` archive, or a
plain rootfs (directory or tarball, which becomes one layer). Every blob is copied into
``blobs/`` verified; the image is recorded by ``ImageStore.add_image``. A refused import leaves
the store as it was: the blobs it added that no image uses are removed again.
``new_config``/``finish_image``/``write_layer`` also serve commit (``unionfs.containers``).
Warnings go to the store's own ``warn``.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import json
import os
import platform
import re
import shutil
import tarfile
import typing
import zlib
from collections.abc import Iterator

from unionfs import imageformat
from unionfs.errors import UserError
from unionfs.imageformat import Descriptor
from unionfs.store import layertar, ociformat, scratch
from unionfs.store.blobs import sha256_bytes
from unionfs.store.images import Image, ImageStore
from unionfs.store.meta import LayerRecord
from unionfs.store.ociformat import Source, blob_rel
from unionfs.store.progress import Progress
from unionfs.store.teeextract import Extraction

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
        return imageformat.LAYER_GZIP
    if head.startswith(ZSTD_MAGIC):
        return imageformat.LAYER_ZSTD
    return imageformat.LAYER_TAR


class Adding:
    """The blobs one import adds; removed again if the import fails and nothing uses them."""

    def __init__(self, store: ImageStore, show_progress: bool | None) -> None:
        self.store = store
        self.added: list[str] = []
        self.show = show_progress
        self.mark = len(store.extracted)

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
            self.store.discard_layers(self.store.extracted[self.mark :])


@contextlib.contextmanager
def undo_on_failure(store: ImageStore, show_progress: bool | None) -> Iterator[Adding]:
    adding = Adding(store, show_progress)
    try:
        yield adding
    except BaseException:
        adding.undo()
        raise


# -- import -----------------------------------------------------------------------------------


def import_image(store: ImageStore, src: str, name: str | None,
                 show_progress: bool | None = None) -> Image:  # fmt: skip
    """Import *src* (see the module docstring) under *name* (or the name it carries)."""
    tag = None
    if not os.path.lexists(src):  # SRC:TAG: the path ends at the first ':' it exists up to
        for i, c in enumerate(src):
            if c == ":" and os.path.exists(src[:i]):
                src, tag = src[:i], src[i + 1 :]
                break
    if not os.path.exists(src):
        raise UserError(f"{src}: no such file or directory")
    if os.path.isdir(src):
        if os.path.isfile(os.path.join(src, "index.json")):
            return _from_layout(store, ociformat.DirSource(src), name, tag, show_progress)
        if os.path.isfile(os.path.join(src, "manifest.json")):
            return _from_docker(store, ociformat.DirSource(src), name, tag, show_progress)
        return _from_rootfs_dir(store, src, name, show_progress)
    with open(src, "rb") as f:
        head = f.read(512)
    if head.startswith(GZIP_MAGIC) and _looks_like_archive(src):
        # `docker save | gzip`: read from an uncompressed copy (tar members need seeking)
        with scratch.temp_file(store.root) as (plain_path, plain):
            with gzip.open(src, "rb") as packed:
                try:
                    shutil.copyfileobj(packed, plain, 1 << 20)
                except (OSError, EOFError, zlib.error) as exc:
                    raise UserError(f"{src}: a damaged gzip file ({exc})") from None
            plain.flush()
            return _from_archive(store, plain_path, src, name, tag, show_progress)
    if head.startswith((GZIP_MAGIC, ZSTD_MAGIC)):
        return _from_rootfs_tar(store, src, name, show_progress)
    return _from_archive(store, src, src, name, tag, show_progress)


_ARCHIVE_FIRST = re.compile(r"(\./)?(oci-layout|index\.json|manifest\.json|repositories|blobs/?"
                            r"|[0-9a-f]{64}(\.json|/.*)?)")  # fmt: skip


def _looks_like_archive(src: str) -> bool:
    """A gzip file whose first tar entry is one an image archive starts with (a rootfs
    tarball starts with its own directories)."""
    try:
        with tarfile.open(src, "r|gz") as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return False
    return first is not None and _ARCHIVE_FIRST.fullmatch(first.name) is not None


def _from_archive(store: ImageStore, path: str, label: str, name: str | None, tag: str | None,
                  show_progress: bool | None) -> Image:  # fmt: skip
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by the with below
        source = ociformat.TarSource(label, tar)
    except (tarfile.TarError, EOFError):
        raise UserError(f"{label}: not a tar archive, or a truncated one") from None
    with tar:
        if not source.members:
            raise UserError(f"{label}: not a tar archive, or an empty one")
        if source.exists("index.json"):
            return _from_layout(store, source, name, tag, show_progress)
        if source.exists("manifest.json"):
            return _from_docker(store, source, name, tag, show_progress)
    return _from_rootfs_tar(store, path, name or _base_name(label), show_progress)


def _copy_blob(adding: Adding, source: Source, desc: Descriptor, label: str) -> str:
    rel = blob_rel(desc.digest)
    if adding.store.has_blob(desc.digest):
        return desc.digest
    if not source.exists(rel):
        raise UserError(f"{source.label}: {label} names blob {desc.digest}, which is missing")
    with source.open(rel) as f:
        return adding.blob(f, desc.digest, desc.size, f"copying {desc.digest[7:19]}")


def _name_from(desc: Descriptor, src: str) -> str | None:
    full = desc.annotations.get(imageformat.FULL_NAME)
    if full:
        return full
    ref = desc.annotations.get(imageformat.REF_NAME)
    if ref and ("/" in ref or ":" in ref):
        return ref
    base = os.path.basename(os.path.normpath(src)).split(".")[0].lower() or "imported"
    return f"{base}:{ref}" if ref else base


def _from_layout(store: ImageStore, source: Source, name: str | None, tag: str | None,
                 show: bool | None) -> Image:  # fmt: skip
    if not source.exists(ociformat.LAYOUT_FILE):
        store.warn(f"{source.label}: no oci-layout file; reading it as an image layout anyway")
    descs = imageformat.parse_index(source.read_small("index.json"), f"{source.label}: index.json")
    top = desc = ociformat.pick(descs, source.label, tag)
    with undo_on_failure(store, show) as adding:
        if imageformat.is_index(desc):  # read in place, verified, not kept: no image names it
            rel = blob_rel(desc.digest)
            if not source.exists(rel):
                raise UserError(f"{source.label}: index.json names blob {desc.digest}, "
                                "which is missing")  # fmt: skip
            data = source.read_small(rel)
            if sha256_bytes(data) != desc.digest:
                raise UserError(f"{source.label}: blob {desc.digest} does not match its digest")
            nested = imageformat.parse_index(data, f"index {desc.digest}")
            desc = ociformat.pick(nested, f"{source.label}: index {desc.digest[:19]}")
            if not imageformat.is_image_manifest(desc):
                raise UserError(f"{source.label}: nested indexes are not supported")
        _copy_blob(adding, source, desc, "index.json")
        what = f"{source.label}: manifest {desc.digest[:19]}"
        manifest = imageformat.parse_manifest(store.blobs.read(desc.digest), what)
        _copy_blob(adding, source, manifest.config, "the manifest")
        for layer in manifest.layers:
            _copy_blob(adding, source, layer, "the manifest")
        return store.add_image(desc.digest, name or _name_from(top, source.label), show)


def _from_docker(store: ImageStore, source: Source, name: str | None, tag: str | None,
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
    with undo_on_failure(store, show) as adding:
        for rel in [config_rel, *layer_rels]:
            if not isinstance(rel, str) or not source.exists(rel):
                raise UserError(f"{label} names {rel!r}, which is missing")
        with source.open(config_rel) as f:
            config_digest = adding.blob(f, None, None, "config")
        config_data = store.blobs.read(config_digest)
        ids = imageformat.diff_ids(imageformat.parse_config(config_data, f"{source.label}: config"))
        if len(ids) != len(layer_rels):
            raise UserError(f"{label}: {len(layer_rels)} layers, the config lists {len(ids)}")
        layers = []
        for rel in layer_rels:
            with source.open(rel) as f:
                head = f.read(4)
            with source.open(rel) as f:
                digest = adding.blob(f, None, None, f"copying {os.path.dirname(rel)[:12]}")
            layers.append(Descriptor(layer_media_type(head), digest, store.blobs.size(digest)))
        config = Descriptor(imageformat.OCI_CONFIG, config_digest, len(config_data))
        manifest = adding.data(imageformat.build_manifest(config, layers))
        tags = entry.get("RepoTags") or []
        default = tags[0] if tags and isinstance(tags[0], str) else None
        return store.add_image(manifest, name or default, show)


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


def finish_image(store: ImageStore, adding: Adding, layers: list[Descriptor],
                 config: dict[str, typing.Any], name: str | None,
                 show: bool | None) -> Image:  # fmt: skip
    """Write *config* and a manifest for *layers* (blobs present, extracted), record it."""
    config_data = imageformat.dumps(config)
    config_desc = Descriptor(imageformat.OCI_CONFIG, adding.data(config_data), len(config_data))
    manifest = adding.data(imageformat.build_manifest(config_desc, layers))
    return store.add_image(manifest, name, show)


def _from_rootfs_dir(store: ImageStore, src: str, name: str | None,
                     show: bool | None) -> Image:  # fmt: skip
    with undo_on_failure(store, show) as adding:
        blob = write_layer(store, adding, src, f"tarring {os.path.basename(src)}")
        store.ensure_layer(blob.digest, blob.media_type, blob.diff_id, show)
        config = new_config(blob.diff_id, f"unionfs import {os.path.abspath(src)}")
        desc = Descriptor(blob.media_type, blob.digest, blob.size)
        return finish_image(store, adding, [desc], config, name or _base_name(src), show)


def _from_rootfs_tar(store: ImageStore, src: str, name: str | None,
                     show: bool | None) -> Image:  # fmt: skip
    with undo_on_failure(store, show) as adding:
        digest, media, diff_id = _add_layer_file(store, adding, src, show)
        config = new_config(diff_id, f"unionfs import {os.path.abspath(src)}")
        desc = Descriptor(media, digest, store.blobs.size(digest))
        return finish_image(store, adding, [desc], config, name or _base_name(src), show)


def _add_layer_file(store: ImageStore, adding: Adding, path: str,
                    show: bool | None) -> tuple[str, str, str]:  # fmt: skip
    """A layer tarball file (gzip, zstd or plain) copied in as a blob and extracted: its
    blob digest, media type and diff_id."""
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        digest = adding.blob(typing.cast(typing.BinaryIO, f), None,
                             os.fstat(f.fileno()).st_size, "copying")  # fmt: skip
    media = layer_media_type(head)
    return digest, media, store.ensure_layer(digest, media, None, show)


def _base_name(src: str) -> str:
    base = os.path.basename(os.path.normpath(src)).split(".")[0].lower()
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in base) or "imported"


def write_layer(store: ImageStore, adding: Adding, upper: str, label: str) -> layertar.LayerBlob:
    """Tar *upper* into a new blob (verified as written) and extract its layer from the same
    tar stream as it is written (``teeextract``: no second pass over the blob); the
    LayerBlob. The caller's ``ensure_layer`` then finds the layer in place."""
    progress = Progress(label, None, adding.show)
    with scratch.temp_dir(store.layers_dir, layertar.LAYER_ROOT_MODE) as tmp:
        extraction = Extraction(tmp, store.style(), store.warn)
        try:
            with store.blobs.writer() as out:
                blob = layertar.write_layer(upper, typing.cast(typing.BinaryIO, out),
                                            progress=progress, tee=extraction.feed)  # fmt: skip
        except BaseException:
            extraction.abort()
            raise
        if out.digest != blob.digest:
            extraction.abort()
            store.blobs.remove(out.digest)
            raise UserError(f"internal error: layer tar digest {blob.digest} != written "
                            f"{out.digest}")  # fmt: skip
        adding.added.append(blob.digest)
        found = extraction.finish()
        if found != blob.diff_id:
            raise UserError(f"internal error: layer tar {blob.diff_id} extracted as {found}")
        store.adopt_layer(tmp, found, extraction.size)
    if progress.done_bytes:
        progress.done()
    return blob


def import_layer(store: ImageStore, path: str, show: bool | None = None) -> LayerRecord:
    """``unionfs import-layer FILE``: a layer tarball (gzip, zstd or plain) into the store."""
    with undo_on_failure(store, show) as adding:
        digest, media, diff_id = _add_layer_file(store, adding, path, show)
        rec = LayerRecord(diff_id, digest, store.blobs.size(digest), media)
        store.record_layer(rec)
        return store.meta.layer(diff_id) or rec
