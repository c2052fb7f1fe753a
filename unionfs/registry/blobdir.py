"""An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``)
as the local end of a push or pull: the same blob convention as the unionfs store.

A blob is written to a hidden ``.partial-<pid>-<hex>`` name beside its final place, hashed
while written, and renamed in only when its digest matched, so a blob name always holds the
bytes it names. ``discard_partials`` removes what a killed writer left behind. Images are
entries of ``index.json`` named by the ``org.opencontainers.image.ref.name`` annotation.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import BinaryIO

from unionfs.errors import UserError
from unionfs.imageformat import OCI_INDEX, OCI_MANIFEST, REF_NAME, check_digest
from unionfs.registry.digest import DigestMismatch, short
from unionfs.registry.manifest import INDEX_TYPES

_PARTIAL = ".partial-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discard_partials(directory: str, prefix: str) -> int:
    """Remove ``<prefix><pid>-...`` files in *directory* whose writer (pid) is gone: what a
    killed transfer left. A live pid (even a reused one) keeps its file. How many went."""
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class OciLayout:
    """An OCI image layout at *root* (created on the first write)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", "sha256")

    # -- blobs ------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, check_digest(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.isfile(self.blob_path(digest))

    def _ensure(self) -> None:
        os.makedirs(self.blob_dir, exist_ok=True)
        marker = os.path.join(self.root, "oci-layout")
        if not os.path.exists(marker):
            _write_atomic(marker, b'{"imageLayoutVersion": "1.0.0"}')

    def add_blob(self, stream: BinaryIO, expected_digest: str) -> str:
        """Copy *stream* to EOF into the blob *expected_digest*; the path, once verified."""
        hexd = check_digest(expected_digest)
        self._ensure()
        final = os.path.join(self.blob_dir, hexd)
        tmp = os.path.join(self.blob_dir, f"{_PARTIAL}{os.getpid()}-{hexd}")
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                while data := stream.read(1 << 20):
                    h.update(data)
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            got = "sha256:" + h.hexdigest()
            if got != expected_digest:
                raise DigestMismatch(
                    f"blob {short(expected_digest)} does not match its digest (got {short(got)})"
                )
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return final

    def discard_partials(self) -> int:
        """Remove partial blobs whose writer is gone; how many were removed."""
        return discard_partials(self.blob_dir, _PARTIAL)

    # -- images -----------------------------------------------------------------------------

    def _index(self) -> dict[str, object]:
        path = os.path.join(self.root, "index.json")
        try:
            with open(path, "rb") as f:
                index = json.load(f)
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        except ValueError:
            raise UserError(f"{path} is not valid JSON") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise UserError(f"{path} is not an OCI index")
        return index

    def image_manifest(self, ref: str | None) -> tuple[str, bytes]:
        """(digest, bytes) of the manifest named *ref* (a tag or digest; None: the only one)."""
        entries = [m for m in self._index()["manifests"] if isinstance(m, dict)]  # type: ignore[attr-defined]
        if ref is None:
            chosen = entries if len(entries) == 1 else []
            if not chosen:
                raise UserError(f"{self.root} holds {len(entries)} images: name one")
        else:
            chosen = [
                m
                for m in entries
                if m.get("digest") == ref or (m.get("annotations") or {}).get(REF_NAME) == ref
            ]
            if not chosen:
                raise UserError(f"no image {ref!r} in {self.root}")
        entry = chosen[0]
        if entry.get("mediaType") in INDEX_TYPES:
            raise UserError(f"image {ref!r} in {self.root} is an index; name one of its manifests")
        digest = str(entry.get("digest"))
        try:
            with open(self.blob_path(digest), "rb") as f:
                return digest, f.read()
        except FileNotFoundError:
            missing = f"manifest {short(digest)} of {ref!r} is missing from {self.root}"
            raise UserError(missing) from None

    def add_image(self, manifest_digest: str, name: str | None) -> None:
        """List the manifest blob *manifest_digest* (already present) in index.json, named
        *name* (replacing what had that name) unless None."""
        with open(self.blob_path(manifest_digest), "rb") as f:
            data = f.read()
        media = json.loads(data).get("mediaType") or OCI_MANIFEST
        self._ensure()
        index = self._index()
        kept = [
            m
            for m in index["manifests"]  # type: ignore[attr-defined]
            if not (
                isinstance(m, dict) and name and (m.get("annotations") or {}).get(REF_NAME) == name
            )
        ]
        entry: dict[str, object] = {
            "mediaType": media,
            "digest": manifest_digest,
            "size": len(data),
        }
        if name:
            entry["annotations"] = {REF_NAME: name}
        kept.append(entry)
        index["manifests"] = kept
        _write_atomic(os.path.join(self.root, "index.json"), json.dumps(index, indent=2).encode())
