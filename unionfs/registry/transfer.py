"""Push and pull one image, moving only the blobs the other side lacks.

Push: every layer and the config is checked with HEAD; a missing one is mounted from
another repository of the same registry when one is known to hold it, else uploaded; the
manifest goes last, so the tag appears only when everything it names is there. Pull: the
manifest (an index picks linux/amd64) first, then each missing blob through the sink's
verifying ``add_blob``, the manifest blob last and the image name after it, so a pull cut
short leaves only whole, verified blobs and no image; run again, it fetches only the rest.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from unionfs.errors import UserError
from unionfs.registry import upload
from unionfs.registry.client import Client
from unionfs.registry.manifest import Descriptor, Index, Manifest, parse, pick_platform
from unionfs.registry.reference import Reference
from unionfs.registry.sources import BlobSources

MAX_MANIFEST = 4 << 20


class ImageSource(Protocol):
    def image_manifest(self, ref: str) -> tuple[str, bytes]: ...
    def blob_path(self, digest: str) -> str: ...


class ImageSink(Protocol):
    def has_blob(self, digest: str) -> bool: ...
    def add_blob(self, stream: BinaryIO, expected_digest: str) -> object: ...
    def add_image(self, manifest_digest: str, name: str | None) -> object: ...


class Progress(Protocol):
    """Told about each blob: ``begin`` (before bytes move), ``advance`` (bytes), ``end``
    with what happened: "sent", "fetched", "mounted" or "skipped"."""

    def begin(self, desc: Descriptor) -> None: ...
    def advance(self, desc: Descriptor, n: int) -> None: ...
    def end(self, desc: Descriptor, outcome: str) -> None: ...


class NoProgress:
    def begin(self, desc: Descriptor) -> None:
        pass

    def advance(self, desc: Descriptor, n: int) -> None:
        pass

    def end(self, desc: Descriptor, outcome: str) -> None:
        pass


@dataclass(slots=True)
class Summary:
    """What a transfer did, counted per distinct blob (layers and config); ``layers_*``
    count the layers alone. Skipped includes mounted (no data moved for either)."""

    manifest_digest: str = ""
    moved: int = 0
    moved_bytes: int = 0
    skipped: int = 0
    skipped_bytes: int = 0
    mounted: int = 0
    layers_mounted: int = 0
    layers_moved: int = 0
    layers_skipped: int = 0

    def count(self, desc: Descriptor, outcome: str, *, layer: bool) -> None:
        if outcome in ("sent", "fetched"):
            self.moved += 1
            self.moved_bytes += desc.size
            self.layers_moved += layer
        else:
            self.skipped += 1
            self.skipped_bytes += desc.size
            self.layers_skipped += layer
            if outcome == "mounted":
                self.mounted += 1
                self.layers_mounted += layer


def _distinct(blobs: tuple[Descriptor, ...]) -> list[Descriptor]:
    seen: set[str] = set()
    out = []
    for d in blobs:
        if d.digest not in seen:
            seen.add(d.digest)
            out.append(d)
    return out


def _tick(progress: Progress, desc: Descriptor) -> Callable[[int], None]:
    return lambda n: progress.advance(desc, n)


def push(
    client: Client,
    source: ImageSource,
    image: str,
    dest: Reference,
    *,
    sources: BlobSources | None = None,
    progress: Progress | None = None,
    chunk_size: int | None = None,
) -> Summary:
    """Push the image named *image* in *source* to *dest* (a tag, or a digest to check)."""
    progress = progress or NoProgress()
    manifest_digest, data = source.image_manifest(image)
    parsed = parse(data, None, f"image {image}")
    if not isinstance(parsed, Manifest):
        raise UserError(f"image {image} is an index; pushing indexes is not supported")
    if dest.digest and dest.digest != manifest_digest:
        raise UserError(f"image {image} has digest {manifest_digest}, not {dest.digest}")
    repo = dest.repository
    client.ping()
    summary = Summary(manifest_digest=manifest_digest)
    for desc in _distinct(parsed.blobs):
        path = source.blob_path(desc.digest)
        # A blob not here (a lazily pulled layer's) will do if the registry has it or can
        # mount it from another repository; it is needed only for an upload.
        local = os.path.isfile(path)
        if client.blob_exists(repo, desc.digest, push=True):
            outcome = "skipped"
        else:
            outcome, location = "sent", None
            known = sources.repos(desc.digest, dest.registry) if sources else []
            for other in [r for r in known if r != repo][:1]:
                location = upload.mount_blob(client, repo, desc.digest, other)
                if location is None:
                    outcome = "mounted"
            if outcome == "sent" and not local:
                raise UserError(f"image {image}: blob {desc.digest} is missing locally")
            if outcome == "sent":
                progress.begin(desc)
                upload.upload_blob(
                    client,
                    repo,
                    desc.digest,
                    path,
                    os.path.getsize(path),
                    location=location,
                    chunk_size=chunk_size,
                    progress=_tick(progress, desc),
                )
        progress.end(desc, outcome)
        summary.count(desc, outcome, layer=desc is not parsed.config)
    client.put_manifest(repo, dest.reference, data, parsed.media_type)
    if sources is not None:
        sources.record([d.digest for d in parsed.blobs], dest.registry, repo)
    return summary


def resolve(
    client: Client, ref: Reference, os_name: str = "linux", arch: str = "amd64"
) -> tuple[str, bytes, Manifest]:
    """The image manifest *ref* names: (digest, bytes, parsed), through an index if needed."""
    what = f"fetching {ref}"
    got = client.get_manifest(ref.repository, ref.reference, what)
    if len(got.data) > MAX_MANIFEST:
        raise UserError(f"{what}: the manifest is larger than {MAX_MANIFEST} bytes")
    parsed = parse(got.data, got.media_type, what)
    if isinstance(parsed, Index):
        entry = pick_platform(parsed, os_name, arch)
        got = client.get_manifest(ref.repository, entry.digest, what)
        parsed = parse(got.data, got.media_type, what)
        if not isinstance(parsed, Manifest):
            raise UserError(f"{what}: the {os_name}/{arch} entry of the index is not a manifest")
    return got.digest, got.data, parsed


def pull(
    client: Client,
    ref: Reference,
    sink: ImageSink,
    name: str | None,
    *,
    sources: BlobSources | None = None,
    progress: Progress | None = None,
    resolved: tuple[str, bytes, Manifest] | None = None,
) -> Summary:
    """Pull *ref* into *sink* and name it *name* there (None: leave it unnamed).
    *resolved*: what ``resolve`` answered already (a caller may check the registry before
    it opens the sink)."""
    progress = progress or NoProgress()
    client.ping()
    digest, data, manifest = resolved or resolve(client, ref)
    summary = Summary(manifest_digest=digest)
    discard = getattr(sink, "discard_partials", None)
    if callable(discard):
        discard()
    for desc in _distinct(manifest.blobs):
        if sink.has_blob(desc.digest):
            outcome = "skipped"
        else:
            outcome = "fetched"
            progress.begin(desc)

            def consume(reader: BinaryIO, d: str = desc.digest) -> None:
                sink.add_blob(reader, d)

            client.fetch_blob(
                ref.repository, desc.digest, desc.size, consume, progress=_tick(progress, desc)
            )
        progress.end(desc, outcome)
        summary.count(desc, outcome, layer=desc is not manifest.config)
    if not sink.has_blob(digest):
        sink.add_blob(io.BytesIO(data), digest)
    sink.add_image(digest, name)
    if sources is not None:
        sources.record([d.digest for d in manifest.blobs], ref.registry, ref.repository)
    return summary


def connect(ref: Reference, *, tls_verify: bool = True, authfile: str | None = None) -> Client:
    """A client for *ref*'s registry with the credentials found for it (if any)."""
    from unionfs.registry.auth import find_credentials

    creds = find_credentials(ref.registry, ref.repository, authfile)
    return Client(ref.registry, ref.api_host, tls_verify=tls_verify, credentials=creds)
