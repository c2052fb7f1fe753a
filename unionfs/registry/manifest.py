"""Manifests and indexes, OCI and Docker v2 schema 2: media types, parsing, platform choice.

Pure: bytes in, values out. A manifest names its config and layers by descriptor; an index
(or Docker manifest list) names manifests per platform, of which ``pick_platform`` chooses
one (linux/amd64 unless asked otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.registry.digest import digest_hex

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: tuple[str, str, str] | None = None  # (os, architecture, variant)


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Everything the image needs besides the manifest itself: layers, then config."""
        return (*self.layers, self.config)


@dataclass(frozen=True, slots=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def _descriptor(obj: object, what: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise UserError(f"{what}: a descriptor is not an object")
    digest, size, media = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise UserError(f"{what}: a descriptor lacks a digest or size")
    digest_hex(digest)
    platform = None
    plat = obj.get("platform")
    if isinstance(plat, dict):
        platform = (
            str(plat.get("os", "")),
            str(plat.get("architecture", "")),
            str(plat.get("variant", "")),
        )
    return Descriptor(str(media), digest, size, platform)


def parse(data: bytes, content_type: str | None, what: str) -> Manifest | Index:
    """A manifest or an index from *data*; the body's ``mediaType`` wins over the header."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{what}: not JSON") from None
    if not isinstance(obj, dict):
        raise UserError(f"{what}: not a JSON object")
    media = obj.get("mediaType") or (content_type or "").split(";")[0].strip()
    if not media:
        media = OCI_INDEX if "manifests" in obj else OCI_MANIFEST
    if media in INDEX_TYPES:
        items = obj.get("manifests")
        if not isinstance(items, list):
            raise UserError(f"{what}: an index without manifests")
        return Index(media, tuple(_descriptor(m, what) for m in items))
    if media in MANIFEST_TYPES:
        layers = obj.get("layers")
        if not isinstance(layers, list) or "config" not in obj:
            raise UserError(f"{what}: a manifest without config or layers")
        return Manifest(
            media,
            _descriptor(obj["config"], what),
            tuple(_descriptor(layer, what) for layer in layers),
        )
    if obj.get("schemaVersion") == 1:
        raise UserError(f"{what}: Docker schema 1 manifests are not supported")
    raise UserError(f"{what}: unsupported manifest type {media!r}")


def pick_platform(index: Index, os_name: str = "linux", arch: str = "amd64") -> Descriptor:
    """The index entry for *os_name*/*arch*; ``UserError`` listing what there is otherwise."""
    for desc in index.manifests:
        if desc.platform and desc.platform[0] == os_name and desc.platform[1] == arch:
            return desc
    have = sorted({f"{d.platform[0]}/{d.platform[1]}" for d in index.manifests if d.platform})
    raise UserError(
        f"no {os_name}/{arch} image in the index (it has: {', '.join(have) or 'no platforms'})"
    )
