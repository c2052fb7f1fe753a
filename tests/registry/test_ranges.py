"""Byte ranges of a blob from the real docker-registry: one range, several in one request
(a multipart/byteranges answer), neighbours merged, a 200 answer taken; retries with
back-off on 5xx and transport errors, a 404 at once; and a file of an eStargz and of a
zstd:chunked blob read through the registry with its chunks verified, EIO when the
registry is gone."""

from __future__ import annotations

import errno
import hashlib
import io
import random
from pathlib import Path

import httpx
import pytest
from patience import scaled

from registry.regutil import Registry
from unionfs.registry.client import Client
from unionfs.registry.ranges import RangeError, RangeStats, RegistryRangeSource, fetch_ranges, merge
from unionfs.registry.upload import upload_blob
from unionfs.store import estargz, zstdchunked
from unionfs.store.chunkread import LayerReader, open_toc

DATA = random.Random(3).randbytes(3 << 20)


def upload(reg: Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with Client(reg.host, tls_verify=False) as client:
        path = Path(f"/tmp/lazy-formats-upload-{digest[7:19]}")
        path.write_bytes(data)
        try:
            upload_blob(client, repo, digest, str(path), len(data))
        finally:
            path.unlink()
    return digest


@pytest.fixture(scope="module")
def blob(registry: Registry) -> str:
    return upload(registry, "ranges/blob", DATA)


def test_merge_joins_overlapping_and_near_ranges() -> None:
    assert merge([(100, 10), (0, 10), (105, 20), (500, 1), (0, 0)], gap=0) == [
        (0, 10), (100, 25), (500, 1)]  # fmt: skip
    assert merge([(0, 10), (20, 10)], gap=10) == [(0, 30)]
    assert merge([(0, 10), (21, 10)], gap=10) == [(0, 10), (21, 10)]


def test_one_request_brings_several_ranges(registry: Registry, blob: str) -> None:
    wanted = [(5, 100), (1 << 20, 4096), (2 << 20, 1), (len(DATA) - 7, 7), (10, 20)]
    stats = RangeStats()
    mark = registry.mark()
    with Client(registry.host, tls_verify=False) as client:
        got = fetch_ranges(client, "ranges/blob", blob, wanted, gap=0, stats=stats)
    assert got == [DATA[o : o + n] for o, n in wanted]
    assert stats.requests == 1 and stats.retries == 0
    assert [s for m, _u, s in registry.requests(mark) if m == "GET" and "/blobs/" in _u] == [206]
    assert stats.bytes == 100 + 4096 + 1 + 7  # (10, 20) lies inside (5, 100)


def test_neighbours_are_fetched_as_one_range_and_batches_split(
    registry: Registry, blob: str
) -> None:
    wanted = [(i * 1000, 100) for i in range(40)]
    stats = RangeStats()
    with Client(registry.host, tls_verify=False) as client:
        merged = fetch_ranges(client, "ranges/blob", blob, wanted, gap=1000, stats=stats)
        assert merged == [DATA[o : o + n] for o, n in wanted] and stats.requests == 1
        assert stats.bytes == 39 * 1000 + 100
        apart = RangeStats()
        far = [(i * 50_000, 10) for i in range(40)]
        got = fetch_ranges(client, "ranges/blob", blob, far, gap=0, per_request=16, stats=apart)
    assert got == [DATA[o : o + n] for o, n in far] and apart.requests == 3


def test_a_200_answer_with_the_whole_blob_is_used(registry: Registry, blob: str) -> None:
    # Go's ServeContent answers 200 with everything when the ranges add up to more than
    # the blob: overlapping ranges that are not merged (gap < 0 keeps them apart).
    wanted = [(0, len(DATA)), (1, len(DATA) - 1)]
    with Client(registry.host, tls_verify=False) as client:
        got = fetch_ranges(client, "ranges/blob", blob, wanted, gap=-len(DATA) - 1)
    assert got == [DATA, DATA[1:]]


def flaky(answers: list[int | str]) -> httpx.MockTransport:
    """A registry that answers each request with the next of *answers*: a status, or
    "ok" (a 206 of the range asked), or "drop" (a connection error)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        answer = answers.pop(0)
        if answer == "drop":
            raise httpx.ConnectError("connection refused", request=request)
        if answer == "ok":
            first, last = (int(x) for x in request.headers["Range"][6:].split("-"))
            return httpx.Response(206, content=DATA[first : last + 1], headers={
                "Content-Range": f"bytes {first}-{last}/{len(DATA)}"})  # fmt: skip
        return httpx.Response(int(answer))

    return httpx.MockTransport(handle)


def test_transient_failures_are_retried_with_back_off() -> None:
    slept: list[float] = []
    stats = RangeStats()
    with Client("r.test", tls_verify=False, transport=flaky([503, "drop", 429, "ok"])) as client:
        got = fetch_ranges(client, "x/y", "sha256:" + "0" * 64, [(10, 5)], backoff=0.5,
                           sleep=slept.append, stats=stats)  # fmt: skip
    assert got == [DATA[10:15]] and slept == [0.5, 1.0, 2.0] and stats.retries == 3


def test_a_registry_that_stays_down_fails_after_the_attempts_and_404_at_once() -> None:
    down = flaky([503] * 3)
    with (Client("r.test", tls_verify=False, transport=down) as client,
          pytest.raises(RangeError, match="gave up after 3 attempts")):  # fmt: skip
        fetch_ranges(client, "x/y", "sha256:" + "0" * 64, [(0, 1)], attempts=3,
                     sleep=lambda _s: None)  # fmt: skip
    slept: list[float] = []
    missing = flaky([404, "ok"])
    with (Client("r.test", tls_verify=False, transport=missing) as client,
          pytest.raises(RangeError, match="not found")):  # fmt: skip
        fetch_ranges(client, "x/y", "sha256:" + "0" * 64, [(0, 1)], sleep=slept.append)
    assert slept == []


TAR_FILES = {"a/small": b"small\n", "a/big": random.Random(4).randbytes(300_000)}


def layer() -> bytes:
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in TAR_FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["estargz", "zstd:chunked"])
def test_a_file_is_read_from_the_registry_by_ranges(registry: Registry, fmt: str) -> None:
    writer = estargz.write_estargz if fmt == "estargz" else zstdchunked.write_zstd_chunked
    out = io.BytesIO()
    written = writer(io.BytesIO(layer()), out, chunk_size=64 << 10)
    digest = upload(registry, "ranges/layer", out.getvalue())
    mark = registry.mark()
    with Client(registry.host, tls_verify=False) as client:
        source = RegistryRangeSource(client, "ranges/layer", digest, written.size)
        reader = LayerReader(source, open_toc(source, written.annotations))
        big = reader.lookup(b"a/big")
        assert big is not None and len(big.chunks) == 5
        before = source.stats.bytes
        assert reader.read_file(big) == TAR_FILES["a/big"]
        # Only the chunks' compressed bytes came (they lie end to end: one range).
        assert source.stats.bytes - before == big.chunks[-1].end - big.chunks[0].offset
        small = reader.lookup(b"a/small")
        assert small is not None and reader.read_file(small) == b"small\n"
    requests = [s for m, _u, s in registry.requests(mark) if m == "GET" and "/blobs/" in _u]
    # The TOC (one or two reads), a/big's five chunks in one request, a/small in one.
    assert set(requests) == {206} and len(requests) <= 4


def test_a_registry_gone_mid_read_is_eio_never_data(tmp_path: Path) -> None:
    from registry.regutil import start_registry

    reg = start_registry(tmp_path / "reg")
    try:
        out = io.BytesIO()
        written = estargz.write_estargz(io.BytesIO(layer()), out, chunk_size=64 << 10)
        digest = upload(reg, "gone/layer", out.getvalue())
        client = Client(reg.host, tls_verify=False, timeout=scaled(30))  # a hang guard only
        source = RegistryRangeSource(client, "gone/layer", digest, written.size, backoff=0.01,
                                     attempts=2)  # fmt: skip
        reader = LayerReader(source, open_toc(source, written.annotations))
    finally:
        reg.stop()
    big = reader.lookup(b"a/big")
    assert big is not None
    with client, pytest.raises(OSError) as caught:
        reader.read_file(big)
    assert caught.value.errno == errno.EIO and source.stats.retries == 1
