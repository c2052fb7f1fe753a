"""OCI image formats: manifests, indexes and configs (parsed strictly, built
deterministically), and reading image layouts from a directory or a tar archive.

Parsing never trusts a name from the input as a path: blobs are found by digests checked
against ``blobs.DIGEST``. Docker's schema 2 media types are read as their OCI twins.
Nothing here writes to the store; ``images``, ``importer`` and ``exporter`` do.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
import typing
from dataclasses import dataclass, field

from unionfs.errors import UserError
from unionfs.store.blobs import check_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = LAYER_TAR + "+gzip"
LAYER_ZSTD = LAYER_TAR + "+zstd"
LAYER_TYPES = frozenset({
    LAYER_TAR, LAYER_GZIP, LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
})  # fmt: skip
REF_NAME = "org.opencontainers.image.ref.name"
FULL_NAME = "io.containerd.image.name"  # docker save and containerd keep the whole name here
LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest,
                                "size": self.size}  # fmt: skip
        if self.annotations:
            d["annotations"] = self.annotations
        if self.platform:
            d["platform"] = self.platform
        return d


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def dumps(value: object) -> bytes:
    """Canonical JSON: sorted keys, no spaces (the same value always gives the same digest)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _json_object(data: bytes, what: str) -> dict[str, typing.Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise UserError(f"{what} is not a JSON object")
    return value


def _descriptor(value: object, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise UserError(f"{what}: a descriptor is not an object")
    media, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media, str) or not isinstance(size, int) or size < 0:
        raise UserError(f"{what}: a descriptor lacks a mediaType or a valid size")
    check_digest(typing.cast(str, digest), f"{what} digest")
    annotations = value.get("annotations") or {}
    platform = value.get("platform") or {}
    if not isinstance(annotations, dict) or not isinstance(platform, dict):
        raise UserError(f"{what}: bad annotations or platform")
    notes = {str(k): str(v) for k, v in annotations.items()}
    where = {str(k): str(v) for k, v in platform.items() if isinstance(v, str)}
    return Descriptor(media, typing.cast(str, digest), size, notes, where)


def parse_manifest(data: bytes, what: str = "manifest") -> Manifest:
    obj = _json_object(data, what)
    media = obj.get("mediaType", OCI_MANIFEST)
    if media not in (OCI_MANIFEST, DOCKER_MANIFEST) or obj.get("schemaVersion") != 2:
        raise UserError(f"{what}: not an image manifest (mediaType {media!r})")
    config = _descriptor(obj.get("config"), what)
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise UserError(f"{what}: no layers list")
    descs = tuple(_descriptor(v, what) for v in layers)
    for d in descs:
        if d.media_type not in LAYER_TYPES:
            raise UserError(f"{what}: unsupported layer media type {d.media_type!r}")
    return Manifest(media, config, descs)


def parse_index(data: bytes, what: str = "index.json") -> list[Descriptor]:
    obj = _json_object(data, what)
    if obj.get("schemaVersion") != 2 or not isinstance(obj.get("manifests"), list):
        raise UserError(f"{what}: not an OCI image index")
    return [_descriptor(v, what) for v in obj["manifests"]]


def parse_config(data: bytes, what: str = "image config") -> dict[str, typing.Any]:
    """The config object; its ``rootfs.diff_ids`` checked to be a list of digests."""
    obj = _json_object(data, what)
    rootfs = obj.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise UserError(f"{what}: no rootfs.diff_ids")
    for d in rootfs["diff_ids"]:
        check_digest(d, f"{what} diff_id")
    return obj


def diff_ids(config: dict[str, typing.Any]) -> list[str]:
    return list(config["rootfs"]["diff_ids"])


def build_manifest(config: Descriptor, layers: typing.Sequence[Descriptor]) -> bytes:
    return dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [d.to_json() for d in layers],
    })  # fmt: skip


def build_index(manifests: typing.Sequence[Descriptor]) -> bytes:
    return dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                  "manifests": [d.to_json() for d in manifests]})  # fmt: skip


def is_image_manifest(d: Descriptor) -> bool:
    return d.media_type in (OCI_MANIFEST, DOCKER_MANIFEST)


def is_index(d: Descriptor) -> bool:
    return d.media_type in (OCI_INDEX, DOCKER_LIST)


# -- reading a layout: a directory, or a tar archive of one -------------------------------


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


def platform_of(d: Descriptor) -> str:
    p = d.platform
    return f"{p.get('os', '?')}/{p.get('architecture', '?')}" if p else ""


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
