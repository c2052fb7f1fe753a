"""Manifests and indexes as a registry serves them: the Accept header, telling a manifest
from an index (by its ``mediaType``, else the Content-Type), and choosing a platform.

Pure: bytes in, values out. Descriptors and image manifests are parsed by
``unionfs.imageformat``, as the store parses what it imports; an index (or Docker
manifest list) names manifests per platform, of which ``pick_platform`` chooses one
(linux/amd64 unless asked otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.imageformat import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    json_object,
    parse_index,
    parse_manifest,
)

__all__ = ["ACCEPT", "INDEX_TYPES", "MANIFEST_TYPES", "Descriptor", "Index", "Manifest", "parse",
           "pick_platform"]

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))


@dataclass(frozen=True, slots=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def parse(data: bytes, content_type: str | None, what: str) -> Manifest | Index:
    """A manifest or an index from *data*; the body's ``mediaType`` wins over the header."""
    obj = json_object(data, what)
    media = obj.get("mediaType") or (content_type or "").split(";")[0].strip()
    if not media:
        media = OCI_INDEX if "manifests" in obj else OCI_MANIFEST
    if media in INDEX_TYPES:
        return Index(media, tuple(parse_index(data, what)))
    if media in MANIFEST_TYPES:
        return parse_manifest(data, what, media)
    if obj.get("schemaVersion") == 1:
        raise UserError(f"{what}: Docker schema 1 manifests are not supported")
    raise UserError(f"{what}: unsupported manifest type {media!r}")


def pick_platform(index: Index, os_name: str = "linux", arch: str = "amd64") -> Descriptor:
    """The index entry for *os_name*/*arch*; ``UserError`` listing what there is otherwise."""
    for desc in index.manifests:
        if desc.platform.get("os") == os_name and desc.platform.get("architecture") == arch:
            return desc
    have = sorted({f"{d.platform.get('os')}/{d.platform.get('architecture')}"
                   for d in index.manifests if d.platform})  # fmt: skip
    raise UserError(
        f"no {os_name}/{arch} image in the index (it has: {', '.join(have) or 'no platforms'})"
    )
