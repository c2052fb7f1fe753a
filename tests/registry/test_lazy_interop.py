"""eStargz and zstd:chunked images pushed by ``unionfs push --compression-format`` are
ordinary images for the tools that know nothing of lazy pulling, and lazy images for one
that does: skopeo copies them (annotations kept), umoci unpacks them to the source
image's tree, podman 4.3 pulls and runs them; with ``enable_partial_images`` podman's
containers/storage fetches them by ranges through our TOCs ("Retrieved partial blob",
206 answers in the registry's log) and runs them all the same."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from patience import scaled
from skopeoutil import skopeo
from store.storeutil import layer_tar, oci_layout
from treecmp import diff_trees, snapshot

from registry.regutil import Registry
from unionfs.store import estargz, zstdchunked

sys.path.insert(0, str(Path(__file__).parents[1] / "podman"))

from podmanutil import CgroupParent, Podman, busybox_rootfs, missing_tools

FORMATS = {"estargz": "esgz", "zstd:chunked": "zc"}
NEW = os.urandom(300_000)


def uf(root: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "unionfs", "--root", str(root), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=scaled(300))  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def sh(*cmd: str | Path) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=scaled(300)
    )
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout


class Pushed:
    def __init__(self, work: Path, registry: Registry) -> None:
        self.work = work
        self.host = registry.host
        self.layout = work / "layout"  # the source image, gzip layers (umoci's reference)
        self.store = work / "store"

    def ref(self, fmt: str) -> str:
        return f"{self.host}/lazy/img:{FORMATS[fmt]}"


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    """busybox in one layer, then a layer that adds a file and whites one out; imported
    into a store and pushed in both lazy formats."""
    work = tmp_path_factory.mktemp("lazy-interop")
    p = Pushed(work, registry)
    root = busybox_rootfs(work / "rootfs")
    base = io.BytesIO()
    with tarfile.open(fileobj=base, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(root)):
            tar.add(root / name, arcname=name)
    top = layer_tar([("data", "dir", ""), ("data/.wh.gone", "file", ""), ("data/new", "file", NEW)])
    oci_layout(p.layout, [base.getvalue(), top], "src", {"Cmd": ["/bin/sh"]})
    uf(p.store, "import", f"{p.layout}:src", "src:1")
    for fmt in FORMATS:
        out = uf(p.store, "push", "src:1", p.ref(fmt), "--compression-format", fmt,
                 "--tls-verify=false")  # fmt: skip
        assert "2 layers: 2 sent" in out, out
    return p


def oci_manifest(layout: Path, tag: str) -> dict[str, object]:
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [m for m in index["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == tag]  # fmt: skip
    result = json.loads((layout / "blobs/sha256" / entry["digest"][7:]).read_text())
    assert isinstance(result, dict)
    return result


def unpacked(layout: Path, tag: str, dest: Path) -> dict[bytes, dict[str, object]]:
    sh("umoci", "unpack", "--image", f"{layout}:{tag}", dest)
    snap = snapshot(dest / "rootfs")
    del snap[b""]
    return snap


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_skopeo_copies_the_image_with_its_toc_annotations(pushed: Pushed, fmt: str) -> None:
    layout = pushed.work / f"copy-{FORMATS[fmt]}"
    sh(*skopeo("copy", "--src-tls-verify=false", f"docker://{pushed.ref(fmt)}",
       f"oci:{layout}:{FORMATS[fmt]}"))  # fmt: skip
    manifest = oci_manifest(layout, FORMATS[fmt])
    layers = manifest["layers"]
    assert isinstance(layers, list) and len(layers) == 2
    key = estargz.TOC_DIGEST if fmt == "estargz" else zstdchunked.MANIFEST_CHECKSUM
    for layer in layers:
        assert key in layer["annotations"]
        data = (layout / "blobs/sha256" / layer["digest"][7:]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == layer["digest"][7:]  # copied as it was
    media = {layer["mediaType"] for layer in layers}
    assert media == {"application/vnd.oci.image.layer.v1.tar+" + ("gzip" if fmt == "estargz"
                                                                    else "zstd")}  # fmt: skip


def test_umoci_unpacks_estargz_to_the_source_tree(pushed: Pushed) -> None:
    layout = pushed.work / "umoci-esgz"
    sh(*skopeo("copy", "--src-tls-verify=false", f"docker://{pushed.ref('estargz')}",
       f"oci:{layout}:esgz"))  # fmt: skip
    source = unpacked(pushed.layout, "src", pushed.work / "b-src")
    theirs = unpacked(layout, "esgz", pushed.work / "b-esgz")
    assert not diff_trees(source, theirs, ("source", "estargz"))
    assert b"data/new" in theirs and b"data/gone" not in theirs
    assert not any(b"stargz" in p or b"landmark" in p for p in theirs)


def test_umoci_reads_zstd_chunked_through_a_zstd_decoder(pushed: Pushed) -> None:
    """umoci 0.4.7 refuses every +zstd layer (a media type it does not know); skopeo
    decodes our zstd:chunked layers (and checks their diff_ids) into gzip ones, and those
    unpack to the source tree."""
    layout = pushed.work / "umoci-zc"
    sh(*skopeo("copy", "--src-tls-verify=false", "--dest-compress-format", "gzip",
       f"docker://{pushed.ref('zstd:chunked')}", f"oci:{layout}:zc"))  # fmt: skip
    source = unpacked(pushed.layout, "src", pushed.work / "b-src2")
    theirs = unpacked(layout, "zc", pushed.work / "b-zc")
    assert not diff_trees(source, theirs, ("source", "zstd:chunked"))


@pytest.fixture
def cgroup_parent() -> Iterator[CgroupParent]:
    if missing := missing_tools():
        pytest.fail(f"not installed: {', '.join(missing)} (dev.sh installs them)")
    parent = CgroupParent("podman-lazy-formats")
    try:
        yield parent
    finally:
        parent.cleanup()
        assert not parent.leftovers()


PARTIAL = ('[storage.options]\npull_options = {enable_partial_images = "true", '
           'use_hard_links = "false", ostree_repos = ""}\n')  # fmt: skip
LISTING = "cd / && find bin data etc | sort && md5sum data/new bin/busybox && ls data"


@pytest.mark.parametrize("partial", [False, True], ids=["full-pull", "partial-pull"])
def test_podman_pulls_and_runs_both_formats(pushed: Pushed, cgroup_parent: CgroupParent,
                                            registry: Registry, partial: bool) -> None:  # fmt: skip
    pm = Podman(pushed.work / f"podman-{partial}", None, cgroup_parent)
    if partial:
        pm.storage_conf.write_text(pm.storage_conf.read_text() + PARTIAL)
    problems: list[str] = []
    try:
        outputs = []
        for fmt in sorted(FORMATS):
            mark = registry.mark()
            pull = subprocess.run(pm.argv("--log-level=debug", "pull", "--tls-verify=false",
                                          pushed.ref(fmt)), env=pm.env(), capture_output=True,
                                  text=True, timeout=scaled(300))  # fmt: skip
            assert pull.returncode == 0, pull.stderr[-2000:]
            ranged = [r for r in registry.requests(mark) if r[2] == 206]
            assert ("Retrieved partial blob" in pull.stderr) is partial
            if partial:  # (a full pull may send Range: bytes=0- too: no test of its absence)
                assert ranged
            argv = pm.argv("run", "--rm", pushed.ref(fmt), "sh", "-c", LISTING)
            run = subprocess.run(
                argv, env=pm.env(), capture_output=True, text=True, timeout=scaled(300)
            )
            assert run.returncode == 0, run.stderr
            outputs.append(run.stdout)
        expected = hashlib.md5(NEW).hexdigest() + "  data/new"
        for out in outputs:
            assert expected in out and "data/gone" not in out and "bin/busybox" in out
        assert outputs[0] == outputs[1]
    finally:
        problems = pm.teardown()
    assert not problems, problems


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_unionfs_pulls_them_into_an_empty_store(pushed: Pushed, fmt: str) -> None:
    from unionfs.store import ImageStore

    dest = pushed.work / f"pulled-{FORMATS[fmt]}"
    out = uf(dest, "pull", pushed.ref(fmt), "--tls-verify=false")
    assert "2 layers: 2 fetched" in out, out
    trees = []
    for root, name in ((pushed.store, "src:1"), (dest, pushed.ref(fmt))):
        with ImageStore(str(root)) as store:
            trees.append([snapshot(p) for p in store.lowers(store.resolve(name))])
    assert trees[0] == trees[1]


@pytest.mark.parametrize("fmt", ["zstd", "gzip"])
def test_plain_formats_push_with_the_same_diff_ids(pushed: Pushed, fmt: str) -> None:
    ref = f"{pushed.host}/lazy/plain:{fmt}"
    uf(pushed.store, "push", "src:1", ref, "--compression-format", fmt, "--tls-verify=false")
    layout = pushed.work / f"plain-{fmt}"
    sh(*skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:{fmt}"))
    manifest = oci_manifest(layout, fmt)
    layers = manifest["layers"]
    assert isinstance(layers, list)
    assert {x["mediaType"] for x in layers} == {f"application/vnd.oci.image.layer.v1.tar+{fmt}"}
    config = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())  # type: ignore[index]
    source = oci_manifest(pushed.layout, "src")
    src_config = json.loads(
        (pushed.layout / "blobs/sha256" / source["config"]["digest"][7:]).read_text()  # type: ignore[index]
    )
    assert config["rootfs"] == src_config["rootfs"]
