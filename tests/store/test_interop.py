"""Interop with the OCI tools (Debian's umoci and skopeo): an image umoci built (several
layers, whiteouts, an opaque directory) imports and mounts to the tree ``umoci unpack``
makes; an image unionfs saves (and a commit on top of it) is accepted by ``skopeo
inspect`` and unpacks with umoci to the tree unionfs mounts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from patience import scaled
from skopeoutil import DATA_ENV, skopeo
from treecmp import diff_trees, marker_leaks, snapshot

from store.conftest import Run
from store.storeutil import layer_tar

# Not skipped when umoci or skopeo is missing (that would hide a failure): dev.sh installs them.


def sh(*cmd: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=scaled(120))  # fmt: skip
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout


def unpacked(layout: Path, tag: str, dest: Path) -> Path:
    sh("umoci", "unpack", "--image", f"{layout}:{tag}", dest)
    return dest / "rootfs"


def tree(root: Path) -> dict[bytes, dict[str, object]]:
    """Everything below *root* (its own attributes are the upper's, not the image's)."""
    snap = snapshot(root)
    del snap[b""]
    return snap


@pytest.fixture
def umoci_image(tmp_path: Path) -> Path:
    """L:img — base files (a hard link, a symlink, modes, owners), then a umoci repack that
    deletes a file and a directory (whiteouts), then a layer with an opaque directory."""
    lay = tmp_path / "L"
    sh("umoci", "init", "--layout", lay)
    sh("umoci", "new", "--image", f"{lay}:img")
    base = tmp_path / "base.tar"
    base.write_bytes(layer_tar([
        ("etc", "dir", ""), ("etc/motd", "file", "base motd\n"), ("etc/gone", "file", "x\n"),
        ("etc/hard", "link", "etc/motd"), ("bin", "dir", ""), ("bin/sh", "symlink", "busybox"),
        ("bin/busybox", "file", "#!fake\n"), ("opt", "dir", ""), ("opt/app", "dir", ""),
        ("opt/app/old1", "file", "1\n"), ("opt/app/old2", "file", "2\n"),
        ("var", "dir", ""), ("var/lib", "dir", ""), ("var/lib/junk", "file", "j\n"),
    ]))  # fmt: skip
    sh("umoci", "raw", "add-layer", "--image", f"{lay}:img", base)
    bundle = tmp_path / "work-bundle"
    sh("umoci", "unpack", "--image", f"{lay}:img", bundle)
    (bundle / "rootfs/etc/gone").unlink()
    shutil.rmtree(bundle / "rootfs/var/lib")
    (bundle / "rootfs/etc/added").write_text("added by repack\n")
    sh("umoci", "repack", "--image", f"{lay}:img", bundle)
    opaque = tmp_path / "opaque.tar"
    opaque.write_bytes(layer_tar([
        ("opt", "dir", ""), ("opt/app", "dir", ""), ("opt/app/.wh..wh..opq", "file", ""),
        ("opt/app/new", "file", "replaced\n"), ("bin", "dir", ""), ("bin/.wh.sh", "file", ""),
    ]))  # fmt: skip
    sh("umoci", "raw", "add-layer", "--image", f"{lay}:img", opaque)
    shutil.rmtree(bundle)
    return lay


def test_umoci_image_mounts_as_umoci_unpacks_it(uf: Run, umoci_image: Path,
                                                tmp_path: Path) -> None:  # fmt: skip
    expected = tree(unpacked(umoci_image, "img", tmp_path / "ref"))
    assert b"opt/app/old1" not in expected and b"etc/added" in expected  # the image is as meant
    uf("import", f"{umoci_image}:img", "from-umoci")
    info = json.loads(uf("inspect", "from-umoci").stdout)[0]
    assert len(info["RootFS"]["Layers"]) == 3
    uf("create", "from-umoci", "--name", "c-umoci")
    mnt = Path(uf("mount", "c-umoci").stdout.strip())
    got = tree(mnt)
    assert marker_leaks(got) == []
    assert diff_trees(expected, got, ("umoci", "unionfs")) == []


def test_saved_image_is_accepted_by_skopeo_and_umoci(uf: Run, umoci_image: Path,
                                                     tmp_path: Path) -> None:  # fmt: skip
    uf("import", f"{umoci_image}:img", "roundtrip:v1")
    out = tmp_path / "saved"
    uf("save", "roundtrip:v1", "--layout", str(out))
    info = json.loads(sh(*skopeo("inspect", f"oci:{out}")))
    assert len(info["Layers"]) == 3 and info["Os"] == "linux"
    uf("create", "roundtrip:v1", "--name", "c-save")
    mnt = Path(uf("mount", "c-save").stdout.strip())
    assert diff_trees(tree(unpacked(out, "v1", tmp_path / "u")), tree(mnt),
                      ("umoci", "unionfs")) == []  # fmt: skip
    sh(*skopeo("inspect", f"oci-archive:{_archive(uf, tmp_path)}"))


def _archive(uf: Run, tmp_path: Path) -> Path:
    path = tmp_path / "saved.tar"
    uf("save", "roundtrip:v1", "-o", str(path))
    return path


def test_commit_applied_by_umoci_gives_the_merged_view(uf: Run, umoci_image: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    uf("import", f"{umoci_image}:img", "base-img")
    uf("create", "base-img", "--name", "c-commit")
    mnt = Path(uf("mount", "c-commit").stdout.strip())
    (mnt / "etc/new-file").write_text("new\n")  # added
    # changed (copy-up); not etc/motd: copying up one name of a hard link leaves the other's
    # nlink at 2 in an overlay's view, as the kernel's does, where a flattened tree says 1
    (mnt / "bin/busybox").write_text("#!changed\n")
    os.chmod(mnt / "bin/busybox", 0o700)
    (mnt / "etc/added").unlink()  # removed
    shutil.rmtree(mnt / "opt/app")  # a directory replaced: removed, then made again
    (mnt / "opt/app").mkdir()
    (mnt / "opt/app/fresh").write_text("fresh\n")
    os.symlink("/etc/motd", mnt / "motd-link")
    uf("commit", "c-commit", "committed:1", "-m", "changes")
    view = tree(mnt)  # still mounted: commit flushed and did not disturb it
    out = tmp_path / "committed"
    uf("save", "committed:1", "--layout", str(out))
    sh(*skopeo("inspect", f"oci:{out}"))
    got = tree(unpacked(out, "1", tmp_path / "u"))
    assert diff_trees(view, got, ("merged view", "umoci")) == []


def test_skopeo_keeps_its_blob_cache_in_the_session_not_on_the_host(tmp_path: Path) -> None:
    """Run as root, skopeo writes /var/lib/containers/cache; the tests' skopeo must not."""
    layout = tmp_path / "layout"
    sh("umoci", "init", "--layout", layout)
    sh("umoci", "new", "--image", f"{layout}:empty")
    proc = subprocess.run(skopeo("--debug", "copy", f"oci:{layout}:empty",
                                 f"oci:{tmp_path / 'copy'}:empty"),
                          capture_output=True, text=True, check=False,
                          timeout=scaled(120))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    used = re.findall(r"Using blob info cache at (\S+?)\"", proc.stderr)
    assert used, proc.stderr  # else the check below checks nothing
    assert all(p.startswith(os.environ[DATA_ENV] + "/") for p in used), used
