"""Our layers applied by others, and theirs by us: a base layer and an upper full of changes
(a file added, one changed, one removed, a directory removed, a directory replaced by an
opaque one, a file turned into a directory) written with write_layer; umoci applies both
and must find the tree kernel overlayfs shows for the upper over the base. The same two
blobs extracted by extract_layer and stacked under the kernel show that tree again."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from layers import WHITEOUT_CHR, Device, Fifo, File, Hardlink, Opaque, Symlink, build
from mountutil import kernel_overlay
from treecmp import Snapshot, diff_trees, snapshot

from unionfs.layerfmt import KERNEL_STYLE
from unionfs.store.layertar import extract_layer, open_layer, write_layer

BASE = {
    "etc/": {"passwd": "root", "old": "old", "keep": File("k", mode=0o600)},
    "usr/lib/": {"a": "a", "b": "b", "sub/": {"deep": "d"}},
    "usr/share/doc/": {"x": "x"},
    "var/log/y": "a file",
    "opt/f": "f",
}
UPPER = {
    "etc/": {"old": WHITEOUT_CHR, "passwd": "changed", "new": "new"},
    "usr/": {"lib/": Opaque({"a": "new a", "c": "c"}), "share": WHITEOUT_CHR},
    "var/log/y/": {"z": "now a directory"},
    "opt/f": Symlink("../etc/passwd"),
}


def umoci() -> str:
    path = shutil.which("umoci")
    if path is None:
        pytest.fail("umoci is not installed (dev.sh installs it)")
    return path


def layout_with(layout: Path, blobs: list[Path]) -> None:
    """An OCI layout holding one image ``t`` made of *blobs* (gzip layers), bottom first."""
    subprocess.run([umoci(), "init", "--layout", str(layout)], check=True)
    subprocess.run([umoci(), "new", "--image", f"{layout}:t"], check=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (layout / "blobs" / "sha256" / digest).write_bytes(data)
        return "sha256:" + digest

    def load(digest: str) -> dict[str, object]:
        result = json.loads((layout / "blobs" / "sha256" / digest[7:]).read_bytes())
        assert isinstance(result, dict)
        return result

    index = json.loads((layout / "index.json").read_text())
    desc = index["manifests"][0]
    manifest = load(desc["digest"])
    config = load(manifest["config"]["digest"])  # type: ignore[index]
    for blob in blobs:
        data = blob.read_bytes()
        diff_id = "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
        config["rootfs"]["diff_ids"].append(diff_id)  # type: ignore[index]
        manifest["layers"].append({  # type: ignore[attr-defined]
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": put(data), "size": len(data),
        })  # fmt: skip
    config_bytes = json.dumps(config).encode()
    manifest["config"].update(digest=put(config_bytes), size=len(config_bytes))  # type: ignore[attr-defined]
    manifest_bytes = json.dumps(manifest).encode()
    desc.update(digest=put(manifest_bytes), size=len(manifest_bytes))
    (layout / "index.json").write_text(json.dumps(index))


def without_root(snap: Snapshot) -> Snapshot:
    """The root's own attributes come from whoever made the directory: not compared."""
    return {path: entry for path, entry in snap.items() if path}


def test_umoci_applies_our_layers_as_the_kernel_stacks_them(tmp_path: Path) -> None:
    base = build(tmp_path / "base", BASE)
    upper = build(tmp_path / "upper", UPPER)
    blobs = []
    for name, tree in (("base", base), ("upper", upper)):
        blob = tmp_path / f"{name}.tar.gz"
        with open(blob, "wb") as f:
            write_layer(str(tree), f)
        blobs.append(blob)
    layout = tmp_path / "layout"
    layout_with(layout, blobs)
    bundle = tmp_path / "bundle"
    subprocess.run([umoci(), "unpack", "--image", f"{layout}:t", str(bundle)], check=True,
                   capture_output=True)  # fmt: skip
    by_umoci = without_root(snapshot(bundle / "rootfs"))

    mnt = tmp_path / "kernel"
    mnt.mkdir()
    with kernel_overlay([upper, base], mnt):
        by_kernel = without_root(snapshot(mnt))
    assert b"usr/share" not in by_kernel and b"usr/lib/b" not in by_kernel  # the oracle works
    assert diff_trees(by_kernel, by_umoci, ("kernel", "umoci")) == []

    extracted = []
    for blob in blobs:
        dest = tmp_path / f"x-{blob.name}"
        dest.mkdir()
        with open_layer(str(blob)) as stream:
            extract_layer(stream, str(dest), KERNEL_STYLE, warn=pytest.fail)
        extracted.append(dest)
    mnt2 = tmp_path / "ours"
    mnt2.mkdir()
    with kernel_overlay(list(reversed(extracted)), mnt2):
        ours = without_root(snapshot(mnt2))
    assert diff_trees(by_kernel, ours, ("kernel", "extracted")) == []


def test_umoci_unpacks_every_entry_kind_of_ours(tmp_path: Path) -> None:
    upper = build(tmp_path / "upper", {
        "etc/conf": File("c", mode=0o600, xattrs={"user.k": "v"}),
        "bin/sh": File("#!", mode=0o4755), "bin/sh2": Hardlink("bin/sh"),
        "lnk": Symlink("bin/sh"), "dev/null": Device(1, 3), "dev/sda": Device(8, 0, block=True),
        "p": Fifo(), "empty/": {},
    })  # fmt: skip
    blob = tmp_path / "layer.tar.gz"
    with open(blob, "wb") as f:
        write_layer(str(upper), f)
    layout_with(tmp_path / "layout", [blob])
    bundle = tmp_path / "bundle"
    subprocess.run([umoci(), "unpack", "--image", f"{tmp_path / 'layout'}:t", str(bundle)],
                   check=True, capture_output=True)  # fmt: skip
    assert (
        diff_trees(without_root(snapshot(upper)), without_root(snapshot(bundle / "rootfs"))) == []
    )


def test_we_apply_a_layer_umoci_wrote(tmp_path: Path) -> None:
    """umoci repack turns changes to an unpacked rootfs into a layer of its own (Go's
    archive/tar, its whiteouts); stacked under the kernel it gives umoci's rootfs again."""
    base = build(tmp_path / "base", BASE)
    blob = tmp_path / "base.tar.gz"
    with open(blob, "wb") as f:
        write_layer(str(base), f)
    layout = tmp_path / "layout"
    layout_with(layout, [blob])
    bundle = tmp_path / "bundle"
    subprocess.run([umoci(), "unpack", "--image", f"{layout}:t", str(bundle)], check=True,
                   capture_output=True)  # fmt: skip
    rootfs = bundle / "rootfs"
    (rootfs / "etc" / "old").unlink()
    (rootfs / "etc" / "passwd").write_text("changed")
    (rootfs / "etc" / "new").write_text("new")
    shutil.rmtree(rootfs / "usr" / "share")
    (rootfs / "var" / "log" / "y").unlink()
    (rootfs / "var" / "log" / "y").mkdir()
    (rootfs / "var" / "log" / "y" / "z").write_text("z")
    subprocess.run([umoci(), "repack", "--image", f"{layout}:t2", str(bundle)], check=True,
                   capture_output=True)  # fmt: skip
    index = json.loads((layout / "index.json").read_text())
    ref = "org.opencontainers.image.ref.name"
    [desc] = [m for m in index["manifests"] if m.get("annotations", {}).get(ref) == "t2"]
    manifest = json.loads((layout / "blobs" / "sha256" / desc["digest"][7:]).read_bytes())
    layers = []
    for i, layer in enumerate(manifest["layers"]):
        dest = tmp_path / f"layer{i}"
        dest.mkdir()
        with open_layer(str(layout / "blobs" / "sha256" / layer["digest"][7:])) as stream:
            extract_layer(stream, str(dest), KERNEL_STYLE, warn=pytest.fail)
        layers.append(dest)
    assert len(layers) == 2
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with kernel_overlay(list(reversed(layers)), mnt):
        ours = without_root(snapshot(mnt))
    assert diff_trees(without_root(snapshot(rootfs)), ours, ("umoci", "extracted")) == []
