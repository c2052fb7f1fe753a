"""The store commands end to end through the CLI: import, images, save and re-import,
export-layer/import-layer, run IMAGE; and every refused input leaving the store as it was.
Containers on the store (create, mount, diff, commit) are in tests/containers."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from patience import scaled

from store.conftest import Run
from store.storeutil import layer_tar, listing, oci_layout, rootfs, tar_dir

BASE = layer_tar([("etc", "dir", ""), ("etc/motd", "file", "base\n")])


def inspect(uf: Run, ref: str) -> dict[str, object]:
    out: list[dict[str, object]] = json.loads(uf("inspect", ref).stdout)
    return out[0]


def test_save_archive_reimports_to_the_same_digests(uf: Run, tmp_path: Path) -> None:
    uf("import", str(rootfs(tmp_path / "rootfs")), "orig")
    before = inspect(uf, "orig")
    uf("save", "orig", "-o", str(tmp_path / "orig.tar"))
    uf("save", "orig", "-o", str(tmp_path / "again.tar"))
    assert (tmp_path / "orig.tar").read_bytes() == (tmp_path / "again.tar").read_bytes()
    uf("rmi", "orig")
    assert uf("images", "-q").stdout == ""
    assert uf("import", str(tmp_path / "orig.tar")).stdout.startswith("localhost/orig:latest ")
    after = inspect(uf, "orig")
    for key in ("Id", "Digest", "Layers"):
        assert after[key] == before[key]
    # as `docker save | gzip` would leave it
    (tmp_path / "orig.tar.gz").write_bytes(gzip.compress((tmp_path / "orig.tar").read_bytes()))
    uf("rmi", "orig")
    uf("import", str(tmp_path / "orig.tar.gz"), "zipped")
    assert inspect(uf, "zipped")["Digest"] == before["Digest"]


def test_export_layer_and_import_layer(uf: Run, tmp_path: Path, store_root: Path) -> None:
    uf("import", str(rootfs(tmp_path / "rootfs")), "img")
    diff_id = inspect(uf, "img")["RootFS"]["Layers"][0]  # type: ignore[index]
    uf("export-layer", diff_id[7:19], "-o", str(tmp_path / "layer.tgz"))
    blob = (tmp_path / "layer.tgz").read_bytes()
    assert blob[:2] == b"\x1f\x8b"
    other = tmp_path / "other"
    proc = uf("--root", str(other), "import-layer", str(tmp_path / "layer.tgz"))
    assert proc.stdout.split()[0] == diff_id
    assert (other / "layers" / diff_id[7:] / "etc/motd").read_text() == "hello\n"


def test_docker_save_archive_and_rootfs_tarball(uf: Run, tmp_path: Path) -> None:
    d = tmp_path / "docker"
    (d / "abc").mkdir(parents=True)
    (d / "abc/layer.tar").write_bytes(BASE)
    import hashlib

    diff_id = "sha256:" + hashlib.sha256(BASE).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}  # fmt: skip
    (d / "cfg.json").write_text(json.dumps(config))
    entry = {"Config": "cfg.json", "RepoTags": ["docker.io/library/tiny:7"],
             "Layers": ["abc/layer.tar"]}  # fmt: skip
    (d / "manifest.json").write_text(json.dumps([entry]))
    uf("import", str(tar_dir(d, tmp_path / "docker.tar")))
    assert inspect(uf, "docker.io/library/tiny:7")["RootFS"] == {"Type": "layers",
                                                                  "Layers": [diff_id]}  # fmt: skip
    (tmp_path / "root.tar.gz").write_bytes(gzip.compress(BASE))
    uf("import", str(tmp_path / "root.tar.gz"), "fromtar")
    assert inspect(uf, "fromtar")["RootFS"]["Layers"] == [diff_id]  # type: ignore[index]


# -- refused inputs: one line, a non-zero exit, the store unchanged ---------------------------


def _bad_digest(lay: Path, d: dict[str, str]) -> None:
    blob = lay / "blobs/sha256" / d["layer0"][7:]
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))


def _missing_blob(lay: Path, d: dict[str, str]) -> None:
    (lay / "blobs/sha256" / d["layer0"][7:]).unlink()


def _truncated(lay: Path, d: dict[str, str]) -> Path:
    archive = tar_dir(lay, lay.with_suffix(".tar"))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    return archive


def _not_tar(lay: Path, d: dict[str, str]) -> Path:
    junk = lay.with_suffix(".bin")
    junk.write_bytes(b"this is not a tar archive at all\n" * 40)
    return junk


def _dotdot(lay: Path, d: dict[str, str]) -> Path:
    bad = lay.with_suffix(".tar")
    bad.write_bytes(layer_tar([("etc", "dir", ""), ("../escape", "file", "x")]))
    return bad


def _absolute(lay: Path, d: dict[str, str]) -> Path:
    bad = lay.with_suffix(".tar")
    bad.write_bytes(layer_tar([("/etc/evil", "file", "x")]))
    return bad


def _symlink_escape(lay: Path, d: dict[str, str]) -> Path:
    bad = lay.with_suffix(".tar")
    bad.write_bytes(layer_tar([("etc", "symlink", "/etc"), ("etc/evil", "file", "x")]))
    return bad


def _dotdot_in_second_layer(lay: Path, d: dict[str, str]) -> Path:
    bad = lay.parent / "lay2"
    oci_layout(bad, [BASE, layer_tar([("etc", "dir", ""), ("etc/../../up", "file", "x")])])
    return bad


def _bad_manifest_json(lay: Path, d: dict[str, str]) -> None:
    (lay / "index.json").write_text("{not json")


BAD = {
    "digest-mismatch": (_bad_digest, "digest"),
    "missing-blob": (_missing_blob, "missing"),
    "truncated-archive": (_truncated, ""),
    "not-a-tar": (_not_tar, "not a tar"),
    "dotdot-entry": (_dotdot, ""),
    "absolute-entry": (_absolute, ""),
    "through-symlink": (_symlink_escape, ""),
    "bad-index-json": (_bad_manifest_json, "JSON"),
    "dotdot-in-second-layer": (_dotdot_in_second_layer, ""),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_refused_import_leaves_the_store_unchanged(
    uf: Run, tmp_path: Path, store_root: Path, case: str
) -> None:
    uf("import", str(rootfs(tmp_path / "rootfs")), "keep")
    before = (listing(store_root), uf("images", "-q").stdout)
    lay = tmp_path / "lay"
    digests = oci_layout(lay, [BASE, layer_tar([("etc", "dir", ""), ("etc/x", "file", "x")])])
    make, words = BAD[case]
    src = make(lay, digests) or lay
    proc = uf("import", str(src), "bad", ok=False)
    assert proc.returncode != 0
    said = proc.stderr.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("unionfs: ") and words in said[0], said
    assert (listing(store_root), uf("images", "-q").stdout) == before
    assert not (tmp_path / "escape").exists()


def test_run_image_uses_its_layers(uf: Run, tmp_path: Path) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    root = rootfs(tmp_path / "bb", {"etc/motd": b"from the image\n", "bin/": ""})
    shutil.copy(busybox, root / "bin/busybox")
    uf("import", str(root), "bbox")
    proc = uf("run", "--rm", "bbox", "/bin/busybox", "cat", "/etc/motd")
    assert proc.stdout == "from the image\n"
    assert uf("ps", "-a", "-q").stdout == ""


def test_tar_helper_is_a_valid_archive(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    oci_layout(lay, [BASE])
    with tarfile.open(tar_dir(lay, tmp_path / "a.tar")) as tar:
        assert "index.json" in tar.getnames()


def test_concurrent_imports_share_one_copy_of_each_layer(
    uf: Run, tmp_path: Path, store_root: Path
) -> None:
    import subprocess
    import sys

    lay = tmp_path / "lay"
    oci_layout(lay, [BASE, layer_tar([("etc", "dir", ""), ("etc/x", "file", "x")])])
    procs = [subprocess.Popen([sys.executable, "-m", "unionfs", "--root", str(store_root),
                               "import", str(lay), f"same:{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(4)]  # fmt: skip
    for proc in procs:
        _out, err = proc.communicate(timeout=scaled(120))
        assert proc.returncode == 0, err
    info = json.loads(uf("inspect", "same:0").stdout)[0]
    assert info["RepoTags"] == [f"localhost/same:{i}" for i in range(4)]
    assert len(info["Layers"]) == 2
    layers = os.listdir(store_root / "layers")
    assert len(layers) == 2 and not [n for n in layers if n.startswith(".")]
    assert not [n for n in os.listdir(store_root / "blobs/sha256") if n.startswith(".")]


def test_progress_bar_only_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from unionfs.store.progress import Progress

    quiet = Progress("copying", 100)  # stderr is not a terminal here
    quiet(50)
    quiet.done()
    assert capsys.readouterr().err == ""
    shown = Progress("copying", 2_000_000, enabled=True)
    shown(1_000_000)
    shown.done()
    err = capsys.readouterr().err
    assert "copying [" in err and "1.0 MB/2.0 MB" in err and err.endswith("\n")
