"""A layer extracted from the tar stream as it is written (commit, import of a rootfs dir):
the same tree and diff_id as extracting the blob afterwards, no second pass, and a failure
on either side stops both without a hang."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from store.storeutil import layer_tar, rootfs
from unionfs.errors import UserError
from unionfs.store import ImageStore, layertar
from unionfs.store.importer import Adding, write_layer
from unionfs.store.teeextract import LIMIT, Extraction

BIG = os.urandom(3 * LIMIT // 2)
TAR = layer_tar([("etc", "dir", ""), ("etc/motd", "file", "hi\n"), ("etc/.wh.gone", "file", ""),
                 ("big", "file", BIG), ("ln", "symlink", "etc/motd")])  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    s = ImageStore(str(tmp_path / "store"), lambda _m: None)
    yield s
    s.close()


def feed(extraction: Extraction, data: bytes, piece: int) -> None:
    for at in range(0, len(data), piece):
        extraction.feed(data[at : at + piece])


@pytest.mark.parametrize("piece", [1000, 1 << 20, len(TAR)])
def test_what_is_fed_is_extracted_and_hashed_whole(
    store: ImageStore, tmp_path: Path, piece: int
) -> None:
    dest = tmp_path / "tee"
    dest.mkdir()
    extraction = Extraction(str(dest), store.style(), store.warn)
    feed(extraction, TAR, piece)
    assert extraction.finish() == "sha256:" + hashlib.sha256(TAR).hexdigest()
    assert extraction.size == len(TAR)
    assert (dest / "etc/motd").read_text() == "hi\n"
    assert os.readlink(dest / "ln") == "etc/motd"
    assert (dest / "big").stat().st_size == 3 * LIMIT // 2
    # the same tree as the second pass made it
    again = tmp_path / "again"
    again.mkdir()
    with open(tmp_path / "layer.tar", "wb") as f:
        f.write(TAR)
    found = layertar.extract_layer(layertar.open_layer(str(tmp_path / "layer.tar")),
                                   str(again), store.style(), warn=store.warn)  # fmt: skip
    assert found == extraction.finish()
    assert sorted(p.name for p in again.rglob("*")) == sorted(p.name for p in dest.rglob("*"))


def test_a_refused_tar_is_its_error_and_the_writer_never_waits_on_it(
    store: ImageStore, tmp_path: Path
) -> None:
    bad = layer_tar([("../escape", "file", "x")]) + os.urandom(4 * LIMIT)
    dest = tmp_path / "tee"
    dest.mkdir()
    extraction = Extraction(str(dest), store.style(), store.warn)
    feed(extraction, bad, 1 << 20)  # past LIMIT: would block if the failed reader held it
    with pytest.raises(UserError):
        extraction.finish()


def test_an_abort_stops_the_extraction(store: ImageStore, tmp_path: Path) -> None:
    dest = tmp_path / "tee"
    dest.mkdir()
    extraction = Extraction(str(dest), store.style(), store.warn)
    extraction.feed(TAR[:5000])
    extraction.abort()  # returns once the thread is gone


def test_commits_writer_leaves_the_layer_extracted(store: ImageStore, tmp_path: Path) -> None:
    """write_layer extracts as it tars: ensure_layer then has nothing to do (on the old code
    the layer appeared only when ensure_layer read the blob back)."""
    tree = rootfs(tmp_path / "tree")
    adding = Adding(store, False)
    blob = write_layer(store, adding, str(tree), "test")
    layer = Path(store.layer_path(blob.diff_id))
    assert (layer / "etc/motd").read_bytes() == b"hello\n"
    assert os.readlink(layer / "bin/link") == "tool"
    assert store.extracted == [blob.diff_id]
    assert store.ensure_layer(blob.digest, blob.media_type, blob.diff_id) == blob.diff_id
    assert [n for n in os.listdir(store.layers_dir) if n.startswith(".tmp-")] == []
    (tmp_path / "x").mkdir()
    with open(store.blob_path(blob.digest), "rb") as f:  # the blob holds the same tar
        assert layertar.extract_layer(layertar.open_layer(f), str(tmp_path / "x"),
                                      store.style(), warn=store.warn) == blob.diff_id  # fmt: skip
