"""A lazy layer without a registry (its blob read through ``FileRangeSource``): the
placeholder tree equals the extracted layer but for file data; a read fetches only the
chunks it covers, in one request, and fills a file once all of its chunks are here; hard
links share one entry; a damaged chunk is EIO and never cached or filled; a damaged cache
file is fetched again; prefetch completes the tree to the extracted layer, byte for byte."""

from __future__ import annotations

import errno
import io
import os
import random
import tarfile
import threading
import time
import typing
from pathlib import Path

import pytest
from treecmp import diff_trees, snapshot

from store.storeutil import layer_tar
from unionfs.layerfmt import KERNEL_STYLE
from unionfs.lazy import layout, placeholders, prune
from unionfs.lazy.chunkcache import ChunkCache
from unionfs.lazy.serving import LazyLayer
from unionfs.store import estargz, zstdchunked
from unionfs.store.chunkread import FileRangeSource, fetch_toc
from unionfs.store.layertar import extract_layer

CHUNK = 64 << 10
BIG = random.Random(5).randbytes(5 * CHUNK + 123)
TAR = layer_tar([("d", "dir", ""), ("d/big", "file", BIG), ("d/small", "file", b"hi\n"),
                 ("d/link", "link", "d/small"), ("d/sym", "symlink", "small"),
                 ("d/empty", "file", b"")])  # fmt: skip
WRITERS = {"estargz": estargz.write_estargz, "zstd:chunked": zstdchunked.write_zstd_chunked}


def warn(message: str) -> None:
    raise AssertionError(message)


def make_lazy(tmp_path: Path, fmt: str, tar: bytes, *, served: bytes | None = None,
              diff_id: str | None = None) -> tuple[LazyLayer, FileRangeSource]:
    """A lazy layer of *tar* in *fmt* (its TOC, tree and record); its blob is that of
    *served* when given (a blob whose TOC is not its own), its diff_id *diff_id* if given."""
    blob_path = tmp_path / "blob"
    with open(blob_path, "wb") as out:
        blob = WRITERS[fmt](io.BytesIO(tar), out, chunk_size=CHUNK)
    source = FileRangeSource(str(blob_path))
    toc, data, offset = fetch_toc(source, blob.annotations)
    if served is not None:
        with open(blob_path, "wb") as out:
            blob = WRITERS[fmt](io.BytesIO(served), out, chunk_size=CHUNK)
        source = FileRangeSource(str(blob_path))
    directory = tmp_path / "lazy" / "layer"
    (directory / layout.TREE).mkdir(parents=True)
    placeholders.build(toc, str(directory / layout.TREE), KERNEL_STYLE, warn)
    rec = layout.LazyRecord("127.0.0.1:1/x/y:z", blob.digest, blob.size, blob.media_type,
                            diff_id or blob.diff_id, toc.format, toc.digest, offset)  # fmt: skip
    layout.save(str(directory), rec, data)

    def whole(consume: typing.Callable[[typing.BinaryIO], None]) -> None:
        with open(blob_path, "rb") as f:
            consume(f)

    cache = ChunkCache(layout.chunk_dir(str(directory)))
    return LazyLayer(str(directory), source, cache, whole), source


@pytest.fixture(params=sorted(WRITERS))
def lazy(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[LazyLayer, FileRangeSource, Path]:
    layer, source = make_lazy(tmp_path, request.param, TAR)
    (tmp_path / "full").mkdir()
    extract_layer(io.BytesIO(TAR), str(tmp_path / "full"), KERNEL_STYLE, warn=warn)
    source.requests = 0
    return layer, source, tmp_path


def test_the_placeholder_tree_is_the_extracted_layer_but_for_data(lazy: tuple) -> None:
    _layer, _source, tmp = lazy
    want, got = snapshot(tmp / "full"), snapshot(tmp / "lazy/layer/tree")
    different = {p for p in set(want) | set(got) if want.get(p) != got.get(p)}
    assert different == {b"d/big", b"d/small", b"d/link"}  # content only: zeros for now
    st = os.stat(tmp / "lazy/layer/tree/d/big")
    assert st.st_blocks == os.stat(tmp / "full/d/big").st_blocks  # du: as the whole file


def test_a_read_fetches_only_the_chunks_it_covers(lazy: tuple) -> None:
    layer, source, _tmp = lazy
    assert layer.pending(b"d/big") and layer.pending(b"d/link")
    assert not layer.pending(b"d/empty") and not layer.pending(b"d/sym")
    assert layer.read(b"d/big", CHUNK - 10, 20) == BIG[CHUNK - 10 : CHUNK + 10]
    assert source.requests == 1
    assert layer.read(b"d/big", CHUNK, 100) == BIG[CHUNK : CHUNK + 100]  # cached
    assert source.requests == 1 and layer.pending(b"d/big")
    assert layer.read(b"d/link", 0, 100) == b"hi\n"  # the link's file, filled
    assert not layer.pending(b"d/small") and not layer.pending(b"d/link")
    assert b"d/small" in layout.filled(layer.dir)


def test_a_damaged_chunk_is_eio_and_never_kept(lazy: tuple) -> None:
    layer, _source, tmp = lazy
    chunk = layer.files[b"d/big"].chunks[2]
    data = bytearray((tmp / "blob").read_bytes())
    data[(chunk.offset + chunk.end) // 2] ^= 0x55
    (tmp / "blob").write_bytes(bytes(data))
    with pytest.raises(OSError) as err:
        layer.read(b"d/big", chunk.file_offset, 10)
    assert err.value.errno == errno.EIO and layer.refused == 1
    assert not layer.cache.has(chunk.digest) and layer.pending(b"d/big")


def test_a_damaged_cache_file_is_fetched_again(lazy: tuple) -> None:
    layer, source, _tmp = lazy
    layer.read(b"d/big", 0, 10)
    digest = layer.files[b"d/big"].chunks[0].digest
    path = Path(layer.cache.dir) / digest[7:]
    assert path.exists(), (digest, os.listdir(layer.cache.dir))
    path.write_bytes(b"x" + path.read_bytes()[1:])
    fresh = ChunkCache(layer.cache.dir)  # another process: it has not checked the file yet
    layer.cache = fresh
    assert layer.read(b"d/big", 0, 10) == BIG[:10]
    assert source.requests == 2


def test_prefetch_completes_the_tree_to_the_extracted_layer(lazy: tuple) -> None:
    layer, _source, tmp = lazy
    layer.read(b"d/big", 0, 10)
    assert layer.prefetch(threading.Event())
    assert layout.is_complete(layer.dir) and layout.broken(layer.dir) is None
    assert not diff_trees(snapshot(tmp / "full"), snapshot(tmp / "lazy/layer/tree"))


# A TOC that lies about headers (other mtimes than the tar's) while every chunk matches:
# the placeholder tree is the TOC's, so only the whole tar can tell.
LIAR = layer_tar([("d", "dir", ""), ("d/big", "file", BIG), ("d/small", "file", b"hi\n"),
                  ("d/link", "link", "d/small"), ("d/sym", "symlink", "small"),
                  ("d/empty", "file", b"")], mtime=1_600_000_000)  # fmt: skip


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_prefetch_refuses_a_tar_whose_headers_differ_from_its_toc(
    fmt: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layer, _source = make_lazy(tmp_path, fmt, LIAR, served=TAR)  # diff_id: the served tar's
    assert not layer.prefetch(threading.Event())
    assert not layout.is_complete(layer.dir)
    assert "mtime differs" in (layout.broken(layer.dir) or "")
    assert "refused" in caplog.text and "mtime differs" in caplog.text
    assert not layer.prefetch(threading.Event())  # never tried again, never complete
    assert layer.pending(b"d/big")  # still served through the lazy path, chunk by chunk


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_prefetch_refuses_a_layer_whose_diff_id_differs(fmt: str, tmp_path: Path) -> None:
    layer, _source = make_lazy(tmp_path, fmt, TAR, diff_id="sha256:" + "0" * 64)
    assert not layer.prefetch(threading.Event())
    assert not layout.is_complete(layer.dir)
    assert "diff_id" in (layout.broken(layer.dir) or "")


def test_prune_keeps_the_chunks_an_incomplete_layer_lists_and_only_those(lazy: tuple) -> None:
    layer, _source, tmp = lazy
    layer.read(b"d/big", 0, 10)
    kept = layer.files[b"d/big"].chunks[0].digest[7:]
    chunks = tmp / "lazy/chunks/sha256"
    (chunks / ("0" * 64)).write_bytes(b"a chunk of a layer removed since")
    (chunks / f"{'1' * 64}.1.2.tmp").write_bytes(b"being written")
    assert prune.prune_chunks(str(tmp / "lazy"))[0] == 1
    assert sorted(os.listdir(chunks)) == sorted([kept, f"{'1' * 64}.1.2.tmp"])
    assert layer.prefetch(threading.Event())  # complete: its data is in its tree
    assert prune.prune_chunks(str(tmp / "lazy"), now=time.time() + 2 * prune.GRACE)[0] == 2
    assert os.listdir(chunks) == []


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_prefetch_of_a_tar_that_gives_a_path_twice_keeps_the_later(fmt: str, tmp_path: Path
                                                                   ) -> None:  # fmt: skip
    tar = layer_tar([("d", "dir", ""), ("d/f", "file", b"older\n"), ("d/f", "file", b"newer\n")])
    layer, _source = make_lazy(tmp_path, fmt, tar)
    assert layer.prefetch(threading.Event())
    assert (tmp_path / "lazy/layer/tree/d/f").read_bytes() == b"newer\n"


def _tar_with_nanoseconds() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (("d", tarfile.DIRTYPE), ("d/f", tarfile.REGTYPE),
                           ("d/s", tarfile.SYMTYPE)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.type, info.mtime, info.linkname = kind, 1_700_000_000, "f"
            info.pax_headers = {"mtime": "1700000000.123456789"}
            info.size = 3 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"hi\n") if kind == tarfile.REGTYPE else None)
    return out.getvalue()


def test_a_zstd_chunked_placeholder_keeps_the_tocs_nanoseconds(tmp_path: Path) -> None:
    """zstd:chunked TOCs carry nanoseconds: the tree has them exactly (not through a
    float), so after the prefetch it equals the extracted layer, times included."""
    tar = _tar_with_nanoseconds()
    layer, _source = make_lazy(tmp_path, "zstd:chunked", tar)
    tree = tmp_path / "lazy/layer/tree"
    assert {os.lstat(tree / p).st_mtime_ns for p in ("d", "d/f", "d/s")} == {1700000000123456789}
    (tmp_path / "full").mkdir()
    extract_layer(io.BytesIO(tar), str(tmp_path / "full"), KERNEL_STYLE, warn=warn)
    assert layer.prefetch(threading.Event())
    assert not diff_trees(snapshot(tmp_path / "full"), snapshot(tree))
