"""The image store: ``ImageStore(root, warn)`` — blobs, extracted layers, images and their names.

Layout of ROOT: ``blobs/sha256/`` (``BlobDir``), ``layers/<diffid-hex>/`` (extracted,
read-only trees, renamed in when complete), ``meta/`` (``Meta``), ``containers/`` (the
runtime's state dirs), ``index/`` (the mounts' LMDB index), ``.lock`` (the store lock).
Temps are ``scratch``'s: what a killed command left is reclaimed by the next one.
Invariants: an image recorded in meta has its manifest, config and layer blobs in
``blobs/`` and each of its layers extracted; a layer dir is never written after it is
renamed in, and is removed only when no image and no container uses it (under the lock).
Nothing below ROOT is reachable by other users (ROOT and ``layers/`` are 0700, as docker
and containers/storage keep theirs): a layer's world-writable /tmp must not be a way into
every container of the image; a store made before this is fixed when next opened.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from unionfs import imageformat, layerfmt
from unionfs.errors import UserError
from unionfs.imageformat import check_digest
from unionfs.safepath import DirFdCache, LayerDir
from unionfs.store import extraction, layertar, scratch
from unionfs.store.blobs import BlobDir
from unionfs.store.meta import ImageRecord, LayerRecord, Meta
from unionfs.store.naming import name_for
from unionfs.store.naming import normalize as normalize  # re-exported: callers know it here
from unionfs.store.progress import Progress
from unionfs.union.workdir import probe_style

Warn = Callable[[str], None]
PERMISSIONS = "1"  # meta setting: the store's modes were checked by this version's rules
LAYER_ROOT_MODE = layertar.LAYER_ROOT_MODE
# A user's store, extracted in the user's namespace: 0/0 whiteouts (allowed there since
# Linux 5.8), user.overlay.opaque plus .wh..wh..opq (trusted.* needs real root).
USERNS_STYLE = layerfmt.MarkerStyle(True, b"user.overlay.opaque", True)


@dataclass(frozen=True, slots=True)
class Use:
    """What one container holds on to: its image (manifest digest) and layer dirs."""

    container: str
    image: str | None
    lowers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Image:
    """An image as resolved from a reference: its record, config and names."""

    record: ImageRecord
    names: tuple[str, ...]

    @property
    def digest(self) -> str:
        return self.record.manifest


def warn_stderr(message: str) -> None:
    print(f"unionfs: warning: {message}", file=sys.stderr)


class ImageStore:
    """One store root. Cheap to create; open it once per command. Every warning of its
    work (extraction, import, commit) goes to *warn*, the callback it is given."""

    def __init__(self, root: str, warn: Warn = warn_stderr) -> None:
        self.root = os.path.abspath(root)
        self.warn = warn
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.blobs = BlobDir(self.root)
        self.layers_dir = os.path.join(self.root, "layers")
        os.makedirs(self.layers_dir, mode=0o700, exist_ok=True)
        self.meta = Meta(self.root)
        self.index_dir = os.path.join(self.root, "index")
        self.extracted: list[str] = []  # layers this process renamed in (for an undo)
        self._close_to_others()
        self.reclaim()

    def _close_to_others(self) -> None:
        """ROOT and ``layers/`` 0700, each layer's root at most 0755 (a store from before
        had 0711, 0755 and whatever a layer's ``./`` entry said). Only what is ours."""
        for path in (self.root, self.layers_dir):
            st = os.stat(path)
            if st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(path, 0o700)
        if self.meta.setting("permissions") == PERMISSIONS:
            return
        for name in os.listdir(self.layers_dir):
            st = os.lstat(os.path.join(self.layers_dir, name))
            if stat.S_ISDIR(st.st_mode) and st.st_mode & ~LAYER_ROOT_MODE & 0o7777:
                os.chmod(os.path.join(self.layers_dir, name), st.st_mode & LAYER_ROOT_MODE)
        with self.meta.write() as txn:
            self.meta.put_setting(txn, "permissions", PERMISSIONS)

    def close(self) -> None:
        self.meta.close()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API the registry client uses ---------------------------------------------------
    def blob_path(self, digest: str) -> str:
        return self.blobs.path(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blobs.has(digest)

    def add_blob(self, source: typing.BinaryIO | str, expected_digest: str | None = None,
                 progress: Callable[[int], None] | None = None) -> str:  # fmt: skip
        """A stream or a file path into ``blobs/`` (temp, verify, rename); its digest."""
        if isinstance(source, str):
            with open(source, "rb") as f:
                return self.blobs.add_stream(typing.cast(typing.BinaryIO, f), expected_digest,
                                             progress)  # fmt: skip
        return self.blobs.add_stream(source, expected_digest, progress)

    def image_manifest(self, ref: str) -> tuple[str, bytes]:
        """(manifest digest, manifest bytes) of a stored image; its config and layer blobs
        are in ``blobs/`` too, but for those of layers pulled lazily (a push mounts them)."""
        image = self.resolve(ref)
        data = self.blobs.read(image.digest)
        for digest in (image.record.config, *image.record.blobs):
            if digest in image.record.blobs and os.path.isdir(self.lazy_tree(digest)):
                continue
            if not self.blobs.has(digest):
                raise UserError(f"image {ref}: blob {digest} is missing from the store")
        return image.digest, data

    def add_image(self, manifest_digest: str, name: str | None,
                  show_progress: bool | None = None) -> Image:  # fmt: skip
        """Record the image whose manifest and blobs are all in ``blobs/`` (verified), under
        *name*: extracts the layers missing, then records everything in one transaction.
        On failure the layers it extracted are removed again; the blobs stay (the caller's)."""
        full = normalize(name) if name else None
        mark = len(self.extracted)
        try:
            return self._add_image(manifest_digest, full, show_progress)
        except BaseException:
            with self.locked():
                self.discard_layers(self.extracted[mark:])
            raise

    def _add_image(self, manifest_digest: str, full: str | None,
                   show_progress: bool | None) -> Image:  # fmt: skip
        data = self.blobs.read(manifest_digest)
        manifest = imageformat.parse_manifest(data, f"manifest {manifest_digest[:19]}")
        config = imageformat.parse_config(self.blobs.read(manifest.config.digest))
        ids = imageformat.diff_ids(config)
        if len(ids) != len(manifest.layers):
            raise UserError(f"image config lists {len(ids)} diff_ids for "
                            f"{len(manifest.layers)} layers")  # fmt: skip
        # A layer pulled lazily (a commit on such an image) is its tree: no blob, no extraction.
        lazy = {d.digest for d in manifest.layers
                if not self.blobs.has(d.digest) and os.path.isdir(self.lazy_tree(d.digest))}
        for desc in manifest.layers:
            if desc.digest in lazy:
                continue
            if not self.blobs.has(desc.digest):
                raise UserError(f"manifest names blob {desc.digest}, which is missing")
            if self.blobs.size(desc.digest) != desc.size:
                raise UserError(f"blob {desc.digest}: size differs from the manifest's")
        for desc, diff_id in zip(manifest.layers, ids, strict=True):
            if desc.digest not in lazy:
                self.ensure_layer(desc.digest, desc.media_type, diff_id, show_progress)
        record = ImageRecord(manifest_digest, manifest.config.digest, tuple(ids),
                             tuple(d.digest for d in manifest.layers),
                             str(config.get("created", "")),
                             sum(d.size for d in manifest.layers))  # fmt: skip
        with self.locked():
            # Under the lock: a concurrent rmi cannot have removed a layer we rely on.
            for desc, diff_id in zip(manifest.layers, ids, strict=True):
                if desc.digest not in lazy and not os.path.isdir(self.layer_path(diff_id)):
                    self.ensure_layer(desc.digest, desc.media_type, diff_id, False)
            with self.meta.write() as txn:
                for desc, diff_id in zip(manifest.layers, ids, strict=True):
                    if desc.digest in lazy:
                        continue
                    self.meta.put_layer(txn, LayerRecord(diff_id, desc.digest, desc.size,
                                                         desc.media_type))  # fmt: skip
                self.meta.put_image(txn, record)
                if full is not None:
                    self.meta.put_name(txn, full, manifest_digest)
        return Image(record, self.names_of(manifest_digest))

    # -- layers -------------------------------------------------------------------------------
    def layer_path(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, check_digest(diff_id, "diff_id"))

    def style(self) -> layerfmt.MarkerStyle:
        """The marker forms this store's layers are extracted with, probed once."""
        known = self.meta.setting("style")
        if known is None:
            with scratch.temp_dir(self.layers_dir, 0o700) as probe:
                cache = DirFdCache()
                layer = LayerDir(probe, cache)
                try:
                    found = probe_style(layer)
                finally:
                    layer.close()
                    cache.close()
            known = ("kernel" if found == layerfmt.KERNEL_STYLE
                     else "userns" if found == USERNS_STYLE else "rootless")  # fmt: skip
            with self.meta.write() as txn:
                self.meta.put_setting(txn, "style", known)
        styles = {"kernel": layerfmt.KERNEL_STYLE, "userns": USERNS_STYLE}
        return styles.get(known, layerfmt.ROOTLESS_STYLE)

    def ensure_layer(
        self, blob: str, media_type: str, diff_id: str | None, show_progress: bool | None = None,
    ) -> str:  # fmt: skip
        """The layer of blob *blob* extracted in ``layers/`` (if it is not already); its
        diff_id, which must equal *diff_id* when given. The blob is re-hashed as it is read."""
        if diff_id is not None and os.path.isdir(self.layer_path(diff_id)):
            return diff_id
        style = self.style()
        progress = Progress(f"extracting {blob[7:19]}", self.blobs.size(blob), show_progress)
        try:
            with scratch.temp_dir(self.layers_dir, LAYER_ROOT_MODE) as tmp:
                found = extraction.extract_blob(self.blobs.path(blob), blob, tmp, style,
                                                self.warn, progress)  # fmt: skip
                if diff_id is not None and found.diff_id != diff_id:
                    raise UserError(
                        f"layer {blob}: its content is {found.diff_id}, the config says {diff_id}"
                    )
                self.adopt_layer(tmp, found.diff_id, found.size)
        finally:
            if progress.done_bytes:
                progress.done()
        return found.diff_id

    def adopt_layer(self, tmp: str, diff_id: str, plain_size: int) -> None:
        """Rename the layer extracted in *tmp* (a ``scratch.temp_dir`` of ``layers_dir``)
        into place as *diff_id*, whose tar has *plain_size* bytes; removed again by an undo."""
        with self.meta.write() as txn:
            self.meta.put_layer_size(txn, diff_id, plain_size)
        try:
            os.rename(tmp, self.layer_path(diff_id))
            self.extracted.append(diff_id)
        except OSError:
            if not os.path.isdir(self.layer_path(diff_id)):
                raise
            # Another command extracted the same layer meanwhile: keep theirs.

    def record_layer(self, rec: LayerRecord) -> None:
        with self.locked():
            if not os.path.isdir(self.layer_path(rec.diff_id)):  # removed by a concurrent undo
                self.ensure_layer(rec.digest, rec.media_type, rec.diff_id, False)
            with self.meta.write() as txn:
                self.meta.put_layer(txn, rec)

    def discard_layers(self, diff_ids: list[str]) -> None:
        """Remove extracted layers that no image records (lock held): a failed import's."""
        recorded = {d for image in self.meta.all_images() for d in image.diff_ids}
        for diff_id in diff_ids:
            path = self.layer_path(diff_id)
            if diff_id not in recorded and self.meta.layer(diff_id) is None and os.path.isdir(path):
                self.remove_layer_dir(diff_id)

    def remove_layer_dir(self, diff_id: str) -> None:
        """Remove layer *diff_id*'s directory, if it is there (lock held): renamed out of
        ``layers/`` first, so a killed removal leaves a temp ``scratch`` reclaims."""
        path = self.layer_path(diff_id)
        if os.path.isdir(path):
            gone = f"{self.layers_dir}/{scratch.REMOVING}{check_digest(diff_id)}-{os.getpid()}"
            os.rename(path, gone)
            scratch.remove_tree(gone)

    def find_layer(self, ref: str) -> LayerRecord:
        """A layer by diff_id or blob digest (or a unique hex prefix of either)."""
        hexpart = ref.removeprefix("sha256:")
        if len(hexpart) < 3 or any(c not in "0123456789abcdef" for c in hexpart):
            raise UserError(f"invalid layer digest {ref!r}")
        n = len(hexpart)
        found = [r for r in self.meta.all_layers()
                 if hexpart in (r.diff_id[7 : 7 + n], r.digest[7 : 7 + n])]  # fmt: skip
        if len(found) == 1:
            return found[0]
        if not found:
            raise UserError(f"no such layer: {ref}")
        raise UserError(f"{ref!r} matches {len(found)} layers: give more of the digest")

    # -- images -------------------------------------------------------------------------------
    def names_of(self, manifest: str) -> tuple[str, ...]:
        return tuple(sorted(n for n, m in self.meta.names().items() if m == manifest))

    def images(self) -> list[Image]:
        names = self.meta.names()
        return [Image(rec, tuple(sorted(n for n, m in names.items() if m == rec.manifest)))
                for rec in self.meta.all_images()]  # fmt: skip

    def resolve(self, ref: str) -> Image:
        """An image by name, manifest digest, or image id (prefix, >= 3 hex digits). A name
        is looked up as podman does: as given (``localhost/`` added to a short name), then,
        for a short name, the one image whose name ends with ``/NAME:TAG``."""
        names = self.meta.names()
        name = name_for(ref, names) if not ref.startswith("sha256:") else None
        manifest = names[name] if name is not None else None
        if manifest is None:
            hexpart = ref.removeprefix("sha256:")
            if len(hexpart) >= 3 and all(c in "0123456789abcdef" for c in hexpart):
                n = len(hexpart)
                hits = {r.manifest for r in self.meta.all_images()
                        if hexpart in (r.id[:n], r.manifest[7 : 7 + n])}  # fmt: skip
                if len(hits) > 1:
                    raise UserError(f"{ref!r} matches {len(hits)} images: give more of the id")
                manifest = hits.pop() if hits else None
            elif not ref.startswith("sha256:"):
                normalize(ref)  # a malformed name says what is wrong with it
        record = self.meta.image(manifest) if manifest is not None else None
        if record is None:
            raise UserError(f"no such image: {ref}")
        return Image(record, tuple(sorted(n for n, m in names.items() if m == manifest)))

    def config(self, image: Image) -> dict[str, typing.Any]:
        return imageformat.parse_config(self.blobs.read(image.record.config))

    def lazy_tree(self, blob: str) -> str:
        """Where a lazily pulled layer of blob *blob* keeps its tree (``unionfs.lazy``):
        every entry as the TOC lists it, regular files filled as their data arrives."""
        return os.path.join(self.root, "lazy", check_digest(blob, "blob"), "tree")

    def lowers(self, image: Image) -> list[str]:
        """The image's layer directories, topmost first (as ``lowerdir=`` wants them); a
        layer pulled lazily and not extracted is its lazy tree."""
        out = []
        for diff_id, blob in zip(image.record.diff_ids, image.record.blobs, strict=True):
            path = self.layer_path(diff_id)
            lazy = self.lazy_tree(blob)
            out.append(lazy if not os.path.isdir(path) and os.path.isdir(lazy) else path)
        return out[::-1]

    def tag(self, ref: str, new_name: str) -> None:
        image = self.resolve(ref)
        with self.locked(), self.meta.write() as txn:
            self.meta.put_name(txn, normalize(new_name), image.digest)

    # -- the store lock -----------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, wait: bool = True) -> Iterator[bool]:
        """The store-wide lock, for the few steps that read, decide and write several things.
        With *wait* False it yields False at once when another command holds it."""
        fd = os.open(os.path.join(self.root, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)  # fmt: skip
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def reclaim(self) -> list[str]:
        """Remove the temps of commands that were killed (``scratch``): blobs and layers half
        written, a decompressed archive, a commit's spelled-out upper. Under the store lock,
        if it is free: a command holding it is at work, and the next command reclaims."""
        dirs = [self.blobs.dir, self.layers_dir, self.root]
        if os.path.isdir(os.path.join(self.root, "lazy")):
            dirs.append(os.path.join(self.root, "lazy"))  # a lazy pull's half-made layer
        containers = os.path.join(self.root, "containers")
        with contextlib.suppress(FileNotFoundError):
            dirs += [e.path for e in os.scandir(containers) if e.is_dir(follow_symlinks=False)]
        try:
            with self.locked(wait=False) as mine:
                if not mine:
                    return []
                return [name for d in dirs for name in scratch.reclaim(d, self.warn)]
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            return []  # a store we may read but not change: not ours to clean

