"""OCI image formats, shared by the store and the registry client: media types,
descriptors, image manifests, indexes and configs, parsed strictly and built
deterministically.

Pure: bytes in, values out; nothing here reads files or talks to a registry. Digests are
checked against ``DIGEST`` (sha256 only) before anyone may use them as a file name.
Docker's schema 2 media types are read as their OCI twins.
"""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass, field

from unionfs.errors import UserError

DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


def check_digest(digest: str, what: str = "digest") -> str:
    """The hex part of a ``sha256:<hex>`` digest; UserError for anything else."""
    m = DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if m is None:
        raise UserError(f"invalid {what} {str(digest)[:80]!r}: expected sha256:<64 hex digits>")
    return m.group(1)


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

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Everything the image needs besides the manifest itself: layers, then config."""
        return (*self.layers, self.config)


def dumps(value: object) -> bytes:
    """Canonical JSON: sorted keys, no spaces (the same value always gives the same digest)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def json_object(data: bytes, what: str) -> dict[str, typing.Any]:
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


def parse_manifest(data: bytes, what: str = "manifest", media_type: str = OCI_MANIFEST) -> Manifest:
    """An image manifest; *media_type* is what it is when it does not say (a registry's
    Content-Type)."""
    obj = json_object(data, what)
    media = obj.get("mediaType") or media_type
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
    obj = json_object(data, what)
    if obj.get("schemaVersion") != 2 or not isinstance(obj.get("manifests"), list):
        raise UserError(f"{what}: not an OCI image index")
    return [_descriptor(v, what) for v in obj["manifests"]]


def parse_config(data: bytes, what: str = "image config") -> dict[str, typing.Any]:
    """The config object; its ``rootfs.diff_ids`` checked to be a list of digests."""
    obj = json_object(data, what)
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


def platform_of(d: Descriptor) -> str:
    p = d.platform
    return f"{p.get('os', '?')}/{p.get('architecture', '?')}" if p else ""
