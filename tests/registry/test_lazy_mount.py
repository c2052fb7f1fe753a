"""``pull --lazy`` of eStargz and zstd:chunked images from the real docker-registry, then
mounted: the pull fetches TOCs only; a read fetches only the chunks it needs (counted in
the registry's access log) and returns the right bytes; the background prefetch ends in a
tree equal to the fully pulled layer's; a registry gone gives EIO, and the same read works
once it is back; a tampered chunk is refused (EIO, logged), never served; an image without
TOCs is pulled whole with one line on stderr; a copy-up of a lazy file copies its data."""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from mountutil import unionfs_mount
from patience import scaled, wait_until
from store.storeutil import layer_tar, oci_layout
from treecmp import diff_trees, snapshot

from registry.regutil import Registry, start_registry
from unionfs.lazy import layout
from unionfs.store import ImageStore

sys.path.insert(0, str(Path(__file__).parents[1] / "podman"))

from podmanutil import busybox_rootfs

FORMATS = {"estargz": "esgz", "zstd:chunked": "zc"}
BIG = random.Random(23).randbytes(9 << 20)  # three chunks of 4 MiB (the writers' default)
SMALL = b"small file\n" * 100


def uf(root: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "unionfs", "--root", str(root), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=scaled(300))  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


class Pushed:
    def __init__(self, work: Path, registry: Registry) -> None:
        self.work = work
        self.registry = registry
        self.store = work / "store"

    def ref(self, fmt: str) -> str:
        return f"{self.registry.host}/lazymount/img:{FORMATS.get(fmt, fmt)}"


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    """busybox in one layer, then a layer with a 9 MiB file, a small one and a hard link;
    pushed in both lazy formats and as gzip (no TOC)."""
    work = tmp_path_factory.mktemp("lazy-mount")
    p = Pushed(work, registry)
    root = busybox_rootfs(work / "rootfs")
    base = io.BytesIO()
    with tarfile.open(fileobj=base, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(root)):
            tar.add(root / name, arcname=name)
    top = layer_tar([("data", "dir", ""), ("data/big", "file", BIG),
                     ("data/small", "file", SMALL), ("data/same", "link", "data/small"),
                     ("data/.wh.gone", "file", "")])  # fmt: skip
    oci_layout(work / "layout", [base.getvalue(), top], "src", {"Cmd": ["/bin/sh"]})
    uf(p.store, "import", f"{work / 'layout'}:src", "src:1")
    for fmt in [*FORMATS, "gzip"]:
        uf(p.store, "push", "src:1", p.ref(fmt), "--compression-format", fmt, "--tls-verify=false")
    return p


@pytest.fixture
def no_prefetch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIONFS_LAZY_PREFETCH", "0")  # the daemons we start inherit it


def lazy_pull(pushed: Pushed, fmt: str, dest: Path) -> list[str]:
    """Pull *fmt* lazily into the store *dest*; the image's layer dirs, topmost first."""
    out = uf(dest, "pull", "--lazy", pushed.ref(fmt), "img", "--tls-verify=false").stdout
    assert "2 layers, 2 lazy" in out, out
    with ImageStore(str(dest)) as store:
        image = store.resolve("img")
        assert not any(store.has_blob(b) for b in image.record.blobs)  # no layer blob came
        return store.lowers(image)


def blob_gets(reg: Registry, mark: int) -> list[int]:
    return [status for method, uri, status in reg.requests(mark)
            if method == "GET" and "/blobs/" in uri]  # fmt: skip


def lazy_layer(lower: str) -> str:
    found = layout.layer_dir(lower)
    assert found is not None, lower
    return found


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_read_fetches_only_its_chunks_and_gets_the_right_bytes(
    pushed: Pushed, fmt: str, tmp_path: Path, no_prefetch: None
) -> None:
    lowers = lazy_pull(pushed, fmt, tmp_path / "store")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    reg = pushed.registry
    with unionfs_mount(lowers, mnt):
        assert (mnt / "data/small").stat().st_size == len(SMALL)  # from the index: no fetch
        assert (mnt / "data/big").stat().st_blocks * 512 >= len(BIG)  # du: the whole file's
        assert {"big", "same", "small"} <= set(os.listdir(mnt / "data"))
        mark = reg.mark()
        with open(mnt / "data/big", "rb") as f:
            f.seek(5 << 20)
            assert f.read(4096) == BIG[5 << 20 : (5 << 20) + 4096]
        assert blob_gets(reg, mark) == [206]  # one range request: the second chunk only
        mark = reg.mark()
        assert (mnt / "data/same").read_bytes() == SMALL
        assert (mnt / "data/small").read_bytes() == SMALL  # a hard link: filled once
        assert blob_gets(reg, mark) == [206]
        busybox = (mnt / "bin/busybox").read_bytes()
        assert busybox == (pushed.work / "rootfs/bin/busybox").read_bytes()
        assert not (mnt / "data/gone").exists()
    filled = layout.filled(lazy_layer(lowers[0]))
    assert b"data/small" in filled and b"data/big" not in filled  # two chunks of 3 fetched
    head, row = uf(tmp_path / "store", "images").stdout.splitlines()
    assert head.split()[-1] == "PRESENT"
    assert 0 < int(row.split()[-1].rstrip("%")) < 100, row


def test_prefetch_makes_the_tree_equal_to_the_fully_pulled_one(
    pushed: Pushed, tmp_path: Path
) -> None:
    full = tmp_path / "full"
    uf(full, "pull", pushed.ref("gzip"), "img", "--tls-verify=false")
    with ImageStore(str(full)) as store:
        want = [snapshot(p) for p in store.lowers(store.resolve("img"))]
    for fmt in FORMATS:
        lowers = lazy_pull(pushed, fmt, tmp_path / FORMATS[fmt])
        mnt = tmp_path / f"mnt-{FORMATS[fmt]}"
        mnt.mkdir()
        with unionfs_mount(lowers, mnt):
            dirs = [lazy_layer(p) for p in lowers]
            done = wait_until(lambda d=dirs: all(layout.is_complete(x) for x in d), 120)
            assert done, "the prefetch did not complete"
            assert (mnt / "data/big").read_bytes() == BIG
        out = uf(tmp_path / FORMATS[fmt], "images", "--format", "{{.Present}}").stdout
        assert out == "100%\n"
        got = [snapshot(p) for p in lowers]
        for w, g in zip(want, got, strict=True):
            assert not diff_trees(w, g), (fmt, diff_trees(w, g)[:5])


def test_a_registry_gone_gives_eio_and_the_mount_recovers(
    pushed: Pushed, tmp_path: Path, no_prefetch: None
) -> None:
    lowers = lazy_pull(pushed, "estargz", tmp_path / "store")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    reg = pushed.registry
    with unionfs_mount(lowers, mnt):
        reg.stop()
        try:
            with pytest.raises(OSError) as err:
                (mnt / "data/small").read_bytes()
            assert err.value.errno == errno.EIO
        finally:
            reg.restart()
        assert (mnt / "data/small").read_bytes() == SMALL  # the same read, now served
        assert (mnt / "bin/busybox").read_bytes()[:4] == b"\x7fELF"


def _blob_file(reg: Registry, digest: str) -> Path:
    hexd = digest.removeprefix("sha256:")
    return reg.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_tampered_chunk_is_refused_and_logged(
    pushed: Pushed, fmt: str, tmp_path: Path, no_prefetch: None
) -> None:
    lowers = lazy_pull(pushed, fmt, tmp_path / "store")
    lazy = lazy_layer(lowers[0])
    rec, _toc = layout.load(lazy)
    from unionfs.lazy.serving import parse

    entry = parse(rec, _toc).by_path()[b"data/big"]
    chunk = entry.chunks[1]
    blob = _blob_file(pushed.registry, rec.digest)
    saved = tmp_path / "blob-saved"
    shutil.copy2(blob, saved)
    data = bytearray(blob.read_bytes())
    middle = (chunk.offset + chunk.end) // 2
    data[middle] ^= 0xFF
    blob.write_bytes(bytes(data))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "daemon.log"
    try:
        with unionfs_mount(lowers, mnt, log=log), open(mnt / "data/big", "rb") as f:
            f.seek(chunk.file_offset)
            with pytest.raises(OSError) as err:
                f.read(4096)
            assert err.value.errno == errno.EIO
            f.seek(0)
            assert f.read(4096) == BIG[:4096]  # another chunk is served
    finally:
        shutil.copy2(saved, blob)
    assert "refused a chunk" in log.read_text()
    assert b"data/big" not in layout.filled(lazy)


def test_an_image_without_toc_is_pulled_whole_with_one_line(pushed: Pushed, tmp_path: Path) -> None:
    proc = uf(tmp_path / "store", "pull", "--lazy", pushed.ref("gzip"), "img",
              "--tls-verify=false")  # fmt: skip
    assert proc.stderr.count("\n") == 1 and "pulling it whole" in proc.stderr, proc.stderr
    assert "2 fetched" in proc.stdout
    with ImageStore(str(tmp_path / "store")) as store:
        image = store.resolve("img")
        assert all(store.has_blob(b) for b in image.record.blobs)


def test_a_copy_up_of_a_lazy_file_copies_its_data(
    pushed: Pushed, tmp_path: Path, no_prefetch: None
) -> None:
    lowers = lazy_pull(pushed, "zstd:chunked", tmp_path / "store")
    mnt, upper, work = tmp_path / "mnt", tmp_path / "upper", tmp_path / "work"
    for d in (mnt, upper, work):
        d.mkdir()
    with unionfs_mount(lowers, mnt, upper, work):
        with open(mnt / "data/big", "r+b") as f:
            f.seek(0, os.SEEK_END)
            f.write(b"tail")
        assert (upper / "data/big").read_bytes() == BIG + b"tail"


def test_run_pull_lazy_starts_a_container_from_the_registry(
    pushed: Pushed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    monkeypatch.setenv("UNIONFS_HOME", str(root))
    proc = uf(root, "run", "--rm", "--pull", "lazy", "--tls-verify=false", pushed.ref("estargz"),
              "/bin/busybox", "sh", "-c", "cat /data/small; wc -c < /data/big")  # fmt: skip
    assert proc.stdout == SMALL.decode() + f"{len(BIG)}\n", proc.stderr
    assert "lazily" in proc.stderr
    with ImageStore(str(root)) as store:
        image = store.resolve(pushed.ref("estargz"))
        assert not any(store.has_blob(b) for b in image.record.blobs)


@pytest.mark.slow  # ~15 s: a container, a commit, two pushes and a second registry
def test_a_container_on_a_lazy_image_commits_and_pushes(
    pushed: Pushed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pushed to the registry it came from, the layers never fetched are mounted from their
    repository; to another registry, they are fetched first (whole, verified)."""
    root = tmp_path / "store"
    monkeypatch.setenv("UNIONFS_HOME", str(root))
    monkeypatch.setenv("UNIONFS_LAZY_PREFETCH", "0")
    lazy_pull(pushed, "zstd:chunked", root)
    uf(root, "create", "img", "--name", "lazy-mount-c1")
    try:
        mnt = Path(uf(root, "mount", "lazy-mount-c1").stdout.strip())
        assert (mnt / "data/small").read_bytes() == SMALL
        (mnt / "data/new").write_bytes(b"new\n")
        uf(root, "umount", "lazy-mount-c1")
        uf(root, "commit", "lazy-mount-c1", "img:2")
    finally:
        uf(root, "rm", "-f", "lazy-mount-c1")
    same = f"{pushed.registry.host}/lazymount/committed:1"
    out = uf(root, "push", "img:2", same, "--tls-verify=false").stdout
    assert "3 layers" in out and "2 mounted" in out, out
    with ImageStore(str(root)) as store:
        assert not any(store.has_blob(b) for b in store.resolve("img").record.blobs)
    other = start_registry(tmp_path / "other-registry")
    try:
        uf(root, "push", "img:2", f"{other.host}/elsewhere/img:2", "--tls-verify=false")
        back = tmp_path / "back"
        uf(back, "pull", f"{other.host}/elsewhere/img:2", "img", "--tls-verify=false")
    finally:
        other.stop()
    with ImageStore(str(back)) as store:
        lowers = store.lowers(store.resolve("img"))
    assert (Path(lowers[0]) / "data/new").read_bytes() == b"new\n"
    assert (Path(lowers[1]) / "data/big").read_bytes() == BIG


def test_create_pull_lazy_makes_a_container_from_the_registry(
    pushed: Pushed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    monkeypatch.setenv("UNIONFS_HOME", str(root))
    proc = uf(root, "create", "--pull", "lazy", "--tls-verify=false", "--name", "lazy-rest-c1",
              pushed.ref("zstd:chunked"))  # fmt: skip
    assert "lazily" in proc.stderr and proc.stdout.strip()
    try:
        with ImageStore(str(root)) as store:
            image = store.resolve(pushed.ref("zstd:chunked"))
            assert not any(store.has_blob(b) for b in image.record.blobs)
        assert "lazy-rest-c1" in uf(root, "ps", "-a").stdout
    finally:
        uf(root, "rm", "-f", "lazy-rest-c1")


def test_images_shows_a_refused_lazy_layer_as_broken(pushed: Pushed, tmp_path: Path) -> None:
    root = tmp_path / "store"
    lowers = lazy_pull(pushed, "estargz", root)
    layout.mark_broken(lazy_layer(lowers[0]), "the tar's header differs from the TOC's entry")
    head, row = uf(root, "images").stdout.splitlines()
    assert head.split()[-1] == "PRESENT" and row.split()[-1] == "broken", row


def test_rmi_removes_the_lazy_layers(pushed: Pushed, tmp_path: Path) -> None:
    root = tmp_path / "store"
    lowers = lazy_pull(pushed, "estargz", root)
    with ImageStore(str(root)) as store:
        blobs = store.resolve("img").record.blobs
    assert set(os.listdir(root / "lazy")) - {"chunks"} == {b[7:] for b in blobs}
    chunks = root / "lazy/chunks/sha256"
    chunks.mkdir(parents=True, exist_ok=True)
    (chunks / ("0" * 64)).write_bytes(b"a chunk its layers no longer want")
    uf(root, "rmi", "img")
    assert not any(os.path.exists(p) for p in lowers)
    assert not [n for n in os.listdir(root / "lazy") if n != "chunks"]
    assert not os.listdir(chunks)  # the chunk cache is pruned with them
