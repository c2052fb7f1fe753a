"""The parallel gzip writer: ordinary gzip that any reader takes, and the same bytes
whatever the number of threads (a layer's digest is that of its blob), with each engine
(ISA-L where installed, zlib-ng without it)."""

from __future__ import annotations

import gzip
import io
import random
import subprocess
import sys

import pytest

from unionfs.store.pgzip import BLOCK, DEFAULT_ENGINE, ENGINES, ParallelGzip


def compressed(data: bytes, threads: int, piece: int = 10_000, engine: str | None = None) -> bytes:
    out = io.BytesIO()
    writer = ParallelGzip(out, threads=threads, engine=engine)
    for at in range(0, len(data), piece):
        writer.write(data[at : at + piece])
    writer.close()
    return out.getvalue()


def sample(size: int) -> bytes:
    """Text-like data (odd sizes: random bytes, which do not compress)."""
    rng = random.Random(size)
    if size % 2:
        return rng.randbytes(size)
    words = [bytes(rng.choices(b"abcdefghij \n", k=rng.randint(1, 12))) for _ in range(500)]
    return b"".join(rng.choices(words, k=size // 6 + 1))[:size]


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 5 * BLOCK + 7])
def test_what_is_written_reads_back_and_does_not_depend_on_threads(size: int, engine: str) -> None:
    data = sample(size)
    one = compressed(data, threads=1, engine=engine)
    assert gzip.decompress(one) == data
    assert compressed(data, threads=3, piece=BLOCK + 123, engine=engine) == one


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_gzip_itself_reads_it_and_says_it_is_sound(engine: str) -> None:
    data = sample(4 * BLOCK)
    blob = compressed(data, threads=2, engine=engine)
    done = subprocess.run(["gzip", "-t"], input=blob, check=False)
    assert done.returncode == 0
    plain = subprocess.run(["gzip", "-dc"], input=blob, capture_output=True, check=True)
    assert plain.stdout == data


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_block_refers_back_into_the_one_before(engine: str) -> None:
    """Each block has the 32 KiB before it as its dictionary: a repeat across a block
    boundary costs next to nothing, as it would in one deflate stream."""
    first = random.Random(1).randbytes(BLOCK)  # incompressible
    repeated = first + first[-16384:]
    longer = len(compressed(repeated, threads=2, engine=engine))
    assert longer < len(compressed(first, threads=2, engine=engine)) + 1024


def test_isal_is_installed_and_deflates_by_default() -> None:
    """ISA-L is a dependency (pyproject.toml): commit's gzip uses it unless it is missing."""
    assert DEFAULT_ENGINE == "isal"
    data = sample(2 * BLOCK)
    assert compressed(data, threads=2) == compressed(data, threads=2, engine="isal")
    assert compressed(data, threads=2) != compressed(data, threads=2, engine="zlib-ng")


def test_without_isal_zlib_ng_deflates() -> None:
    """A machine without the isal wheel still writes gzip (zlib-ng at level 6)."""
    code = (
        "import sys, io, gzip; sys.modules['isal'] = None\n"
        "from unionfs.store import pgzip\n"
        "out = io.BytesIO(); w = pgzip.ParallelGzip(out); w.write(b'x' * 300000); w.close()\n"
        "assert gzip.decompress(out.getvalue()) == b'x' * 300000\n"
        "print(pgzip.DEFAULT_ENGINE, sorted(pgzip.ENGINES))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["zlib-ng", "['zlib-ng']"]
