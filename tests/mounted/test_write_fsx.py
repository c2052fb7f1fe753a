"""fsx-style random I/O on a copied-up file, checked against an in-memory model.

A seeded sequence of writes, truncates, reads, mmap reads and writes, fsyncs, reopens and,
with the patched pyfuse3, fallocate (allocate, keep-size, punch-hole, zero-range) and
SEEK_DATA/SEEK_HOLE (a hole must hold only zeros) runs on one file that starts in a lower
layer (so the first write copies it up). Every read and every size is compared with the
model as it happens; at the end the whole file is, and after unmount the upper file itself
must hold exactly the model's bytes.
"""

from __future__ import annotations

import mmap
import os
import random
from pathlib import Path

import pytest
from mountutil import File, tree
from writeutil import fallocate, writable

from unionfs.fuse import features

OPS = 2000
MAX_SIZE = 1 << 20
START = random.Random(0).randbytes(300_000)
KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE = 0x01, 0x02, 0x10
ALLOCATE = {
    "allocate": 0,
    "allocate-keep": KEEP_SIZE,
    "punch": PUNCH_HOLE | KEEP_SIZE,
    "zero": ZERO_RANGE,
    "zero-keep": ZERO_RANGE | KEEP_SIZE,
}
SPACE = "fallocate" in features.available() and "lseek" in features.available()


class Fsx:
    """The file under test and its model; ``log`` holds the ops done, for the failure."""

    def __init__(self, path: Path, seed: int) -> None:
        self.path = path
        self.rng = random.Random(seed)
        self.model = bytearray(START)
        self.fd = os.open(path, os.O_RDWR)
        self.log: list[str] = []

    def check(self, got: bytes, offset: int, length: int, what: str) -> None:
        want = bytes(self.model[offset : offset + length])
        if got != want:
            pairs = zip(got, want, strict=False)
            bad = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(got), len(want)))
            tail = "\n  ".join(self.log[-15:])
            raise AssertionError(
                f"{what}: {len(got)} of {length} bytes at {offset}; first difference at "
                f"{offset + bad} "
                f"(file size {len(self.model)})\nlast ops:\n  {tail}"
            )

    def step(self) -> None:
        rng = self.rng
        size = len(self.model)
        kind = rng.choices(
            ["write", "truncate", "read", "mapread", "mapwrite", "fsync", "reopen", "seek",
             *ALLOCATE],
            weights=[30, 8, 30, 12, 8, 2, 3, 4 * SPACE, *[3 * SPACE] * len(ALLOCATE)],
        )[0]  # fmt: skip
        if kind == "write":
            offset = rng.randrange(0, min(size + 70_000, MAX_SIZE))
            data = rng.randbytes(rng.randrange(1, 65_536))
            self.log.append(f"write {offset}+{len(data)}")
            assert os.pwrite(self.fd, data, offset) == len(data)
            if offset > size:
                self.model.extend(bytes(offset - size))
            self.model[offset : offset + len(data)] = data
        elif kind == "truncate":
            new = rng.randrange(0, MAX_SIZE)
            self.log.append(f"truncate {new}")
            os.ftruncate(self.fd, new)
            if new < size:
                del self.model[new:]
            else:
                self.model.extend(bytes(new - size))
        elif kind == "read":
            offset = rng.randrange(0, size + 10)
            length = rng.randrange(1, 100_000)
            self.log.append(f"read {offset}+{length}")
            self.check(os.pread(self.fd, length, offset), offset, length, "read")
        elif kind in ("mapread", "mapwrite") and size:
            offset = rng.randrange(0, size)
            length = rng.randrange(1, min(size - offset, 100_000) + 1)
            self.log.append(f"{kind} {offset}+{length}")
            with mmap.mmap(self.fd, size) as mapped:
                if kind == "mapread":
                    self.check(mapped[offset : offset + length], offset, length, "mmap read")
                else:
                    data = rng.randbytes(length)
                    mapped[offset : offset + length] = data
                    mapped.flush()
                    self.model[offset : offset + length] = data
        elif kind in ALLOCATE:
            offset = rng.randrange(0, min(size + 70_000, MAX_SIZE))
            length = rng.randrange(1, 200_000)
            self.log.append(f"{kind} {offset}+{length}")
            fallocate(self.fd, ALLOCATE[kind], offset, length)
            end = offset + length if kind.endswith("keep") or kind == "punch" else None
            end = min(offset + length, size) if end is not None else offset + length
            if kind in ("punch", "zero", "zero-keep") and offset < end:
                self.model[offset:end] = bytes(end - offset)
            if end > len(self.model):
                self.model.extend(bytes(end - len(self.model)))
        elif kind == "seek" and size:
            offset = rng.randrange(0, size)
            hole = os.lseek(self.fd, offset, os.SEEK_HOLE)
            try:
                data = os.lseek(self.fd, hole, os.SEEK_DATA)
            except OSError:
                data = size  # no data after the hole
            self.log.append(f"seek {offset}: hole {hole}, then data at {data}")
            assert offset <= hole <= size and hole <= data <= size, self.log[-1]
            self.check(bytes(data - hole), hole, data - hole, "a hole's bytes")
        elif kind == "fsync":
            self.log.append("fsync")
            os.fsync(self.fd)
        elif kind == "reopen":
            self.log.append("reopen")
            os.close(self.fd)
            self.fd = os.open(self.path, os.O_RDWR)
        st = os.fstat(self.fd)
        assert st.st_size == len(self.model), f"size {st.st_size} != {len(self.model)}: {kind}"

    def close(self) -> None:
        os.close(self.fd)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_io_on_a_copied_up_file_matches_the_model(tmp_path: Path, seed: int) -> None:
    layers = [tree({"d": {"other": b"x"}}), tree({"d": {"data": File(START, mode=0o600)}})]
    with writable(tmp_path, layers) as m:
        fsx = Fsx(m.path("d/data"), seed)
        try:
            for _ in range(OPS):
                fsx.step()
            os.fsync(fsx.fd)
        finally:
            fsx.close()
        whole = m.path("d/data").read_bytes()
        assert whole == bytes(fsx.model), "the file read back whole differs from the model"
        if SPACE:  # every fallocate mode and SEEK_HOLE really ran (and did not fail)
            done = {entry.split(" ", 1)[0] for entry in fsx.log}
            assert {*ALLOCATE, "seek"} <= done, sorted(done)
        assert os.stat(m.path("d/data")).st_size == len(fsx.model)
    assert (m.upper / "d" / "data").read_bytes() == bytes(fsx.model)
    assert (m.lowers[1] / "d" / "data").read_bytes() == START
