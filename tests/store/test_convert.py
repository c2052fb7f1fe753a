"""``unionfs convert``: the converted image has the formats' media types and annotations,
the same layer trees, the diff_ids it should (kept by zstd:chunked, new for eStargz, and
then a config that says so); converting it again keeps every blob; bad input is one line
and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from treecmp import snapshot

from store.conftest import Run
from store.storeutil import layer_tar, listing, oci_layout
from unionfs.store import ImageStore
from unionfs.store.estargz import TOC_DIGEST
from unionfs.store.zstdchunked import MANIFEST_CHECKSUM

LAYERS = [
    layer_tar([("etc", "dir", ""), ("etc/motd", "file", "hello\n"), ("bin", "dir", ""),
               ("bin/tool", "file", "x" * 100_000), ("bin/sh", "symlink", "tool")]),
    layer_tar([("etc", "dir", ""), ("etc/.wh.motd", "file", ""), ("app", "dir", ""),
               ("app/main", "file", "main\n"), ("app/hard", "link", "app/main")]),
]  # fmt: skip


def image(tmp_path: Path, uf: Run) -> None:
    oci_layout(tmp_path / "layout", LAYERS, "src")
    uf("import", f"{tmp_path / 'layout'}:src", "src:1")


def manifest_of(root: Path, name: str) -> tuple[dict[str, object], dict[str, object], list[Path]]:
    with ImageStore(str(root)) as store:
        img = store.resolve(name)
        manifest = json.loads(store.blobs.read(img.digest))
        config = json.loads(store.blobs.read(img.record.config))
        return manifest, config, [Path(p) for p in store.lowers(img)]


def test_convert_to_each_format(tmp_path: Path, uf: Run, store_root: Path) -> None:
    image(tmp_path, uf)
    _m, src_config, src_layers = manifest_of(store_root, "src:1")
    src_trees = [snapshot(p) for p in src_layers]
    for flag, name, key, media in (("--zstd-chunked", "zc:1", MANIFEST_CHECKSUM, "zstd"),
                                   ("--estargz", "esgz:1", TOC_DIGEST, "gzip")):  # fmt: skip
        out = uf("convert", "src:1", name, flag).stdout
        assert "2 layers re-encoded, 0 kept" in out
        manifest, config, layers = manifest_of(store_root, name)
        for layer in manifest["layers"]:  # type: ignore[attr-defined]
            assert layer["mediaType"] == f"application/vnd.oci.image.layer.v1.tar+{media}"
            assert key in layer["annotations"]
        same_ids = config["rootfs"] == src_config["rootfs"]  # type: ignore[comparison-overlap]
        assert same_ids is (flag == "--zstd-chunked"), out
        assert ("diff_ids unchanged" in out) is same_ids
        assert config["history"] == src_config["history"]
        assert [snapshot(p) for p in layers] == src_trees
        again = uf("convert", name, name + "-again", flag).stdout
        assert "0 layers re-encoded, 2 kept" in again


def test_bad_input_is_one_line_and_changes_nothing(
    tmp_path: Path, uf: Run, store_root: Path
) -> None:
    image(tmp_path, uf)
    before = listing(store_root)
    for args, message in ((("convert", "nosuch:1", "x:1", "--estargz"), "no such image"),
                          (("convert", "src:1", "x:1"), "one of the arguments"),
                          (("convert", "src:1", "x:1", "--estargz", "--zstd-chunked"),
                           "not allowed"),
                          (("convert", "src:1", "bad name", "--estargz"), "invalid image name"),
                          (("push", "src:1", "127.0.0.1:1/x:1", "--compression-format", "lz4"),
                           "invalid choice")):  # fmt: skip
        proc = uf(*args, ok=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert listing(store_root) == before
