"""Builders for test images: ``rootfs`` writes a small tree; ``layer_tar`` an OCI layer
tarball from (name, kind, data) entries, so that whiteouts and opaque markers are exact;
``oci_layout`` an image layout from layer tarballs (what a registry or umoci would hold)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path


def rootfs(path: Path, files: dict[str, bytes | str] | None = None) -> Path:
    """A small tree: ``{"etc/motd": b"hi", "bin/sh": "->busybox", "var/": ""}``."""
    files = files if files is not None else {
        "etc/motd": b"hello\n", "etc/app.conf": b"setting=1\n", "bin/tool": b"#!/bin/sh\n",
        "usr/share/doc/README": b"docs\n", "usr/share/doc/old": b"old\n", "bin/link": "->tool",
        "var/empty/": "",
    }  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            target.mkdir(exist_ok=True)
        elif isinstance(data, str) and data.startswith("->"):
            os.symlink(data[2:], target)
        else:
            target.write_bytes(data if isinstance(data, bytes) else data.encode())
    if (path / "bin/tool").exists():
        (path / "bin/tool").chmod(0o755)
    return path


def layer_tar(entries: list[tuple[str, str, bytes | str]], *, mtime: int = 1_700_000_000) -> bytes:
    """An uncompressed layer tarball: (name, "file"|"dir"|"symlink"|"link", data)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            payload = data.encode() if isinstance(data, str) else data
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                tar.addfile(info)
            else:
                info.size, info.mode = len(payload), 0o644
                tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs/sha256" / digest[7:]).write_bytes(data)
    return digest, len(data)


def oci_layout(layout: Path, layers: list[bytes], tag: str = "latest",
               settings: dict[str, object] | None = None) -> dict[str, str]:  # fmt: skip
    """An OCI image layout of gzip layers built from uncompressed *layers*, its config's
    ``config`` being *settings* (Cmd, Env, ...); returns the digests: ``manifest``,
    ``config`` and ``layer0``.. (blobs)."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    descs, diff_ids, found = [], [], {}
    for i, raw in enumerate(layers):
        digest, size = blob(layout, gzip.compress(raw, mtime=0))
        found[f"layer{i}"] = digest
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": digest, "size": size})  # fmt: skip
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    config = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}  # fmt: skip
    if settings is not None:
        config["config"] = settings
    cdigest, csize = blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cdigest, "size": csize}, "layers": descs}  # fmt: skip
    mdigest, msize = blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
        "size": msize, "annotations": {"org.opencontainers.image.ref.name": tag}}]}  # fmt: skip
    (layout / "index.json").write_text(json.dumps(index))
    return {"manifest": mdigest, "config": cdigest, **found}


def tar_dir(src: Path, out: Path) -> Path:
    """*src*'s contents as an uncompressed tar (an OCI archive when *src* is a layout)."""
    with tarfile.open(out, "w:") as tar:
        for name in sorted(os.listdir(src)):
            tar.add(src / name, arcname=name)
    return out


def listing(root: Path) -> list[str]:
    """Every path below *root* (to show that a refused import changed nothing)."""
    found = []
    for sub in ("blobs", "layers"):
        for dirpath, dirnames, filenames in os.walk(root / sub):
            for name in dirnames + filenames:
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)
