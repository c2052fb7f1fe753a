"""The parallel gzip writer: ordinary gzip that any reader takes, and the same bytes
whatever the number of threads (a layer's digest is that of its blob)."""

from __future__ import annotations

import gzip
import io
import random
import subprocess

import pytest

from unionfs.store.pgzip import BLOCK, ParallelGzip


def compressed(data: bytes, threads: int, piece: int = 10_000) -> bytes:
    out = io.BytesIO()
    writer = ParallelGzip(out, level=6, threads=threads)
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


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 5 * BLOCK + 7])
def test_what_is_written_reads_back_and_does_not_depend_on_threads(size: int) -> None:
    data = sample(size)
    one = compressed(data, threads=1)
    assert gzip.decompress(one) == data
    assert compressed(data, threads=3, piece=BLOCK + 123) == one


def test_gzip_itself_reads_it_and_says_it_is_sound() -> None:
    data = sample(4 * BLOCK)
    done = subprocess.run(["gzip", "-t"], input=compressed(data, threads=2), check=False)
    assert done.returncode == 0
    plain = subprocess.run(["gzip", "-dc"], input=compressed(data, threads=2),
                           capture_output=True, check=True)  # fmt: skip
    assert plain.stdout == data


def test_a_block_refers_back_into_the_one_before() -> None:
    """Each block has the 32 KiB before it as its dictionary: a repeat across a block
    boundary costs next to nothing, as it would in one deflate stream."""
    first = random.Random(1).randbytes(BLOCK)  # incompressible
    repeated = first + first[-16384:]
    assert len(compressed(repeated, threads=2)) < len(compressed(first, threads=2)) + 1024
