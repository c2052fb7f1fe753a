"""fallocate (every mode), lseek SEEK_DATA/SEEK_HOLE and copy_file_range through unionfs
answer as through kernel overlayfs: on a lower file (copied up first), a metacopy file
(``metacopy=on``: its data comes up first), an upper file and a new one; errnos included.

Needs the patched pyfuse3 (third_party/pyfuse3): stock pyfuse3 has no such handlers, and
the kernel then answers EOPNOTSUPP (fallocate) or treats every file as all data (lseek).
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from mountutil import tree
from writeutil import Mounted, Outcome, fallocate, outcome, summary, writable

from unionfs.fuse import features

pytestmark = pytest.mark.skipif(
    "fallocate" not in features.available(), reason="pyfuse3 without the fallocate patch"
)

KEEP_SIZE = 0x01
PUNCH_HOLE = 0x02
COLLAPSE_RANGE = 0x08
ZERO_RANGE = 0x10
INSERT_RANGE = 0x20
BLOCK = 4096

MODES = {
    "default": 0,
    "keep_size": KEEP_SIZE,
    "punch_hole": PUNCH_HOLE | KEEP_SIZE,
    "punch_hole_alone": PUNCH_HOLE,  # EOPNOTSUPP: a hole must keep the size
    "zero_range": ZERO_RANGE,
    "zero_range_keep_size": ZERO_RANGE | KEEP_SIZE,
    "unknown": 0x4000,
}
# Kernel overlayfs passes these to an ext4 upper; the kernel's FUSE client refuses them
# (fuse_file_fallocate) before any FUSE file system sees them: a known difference.
REFUSED_BY_FUSE = {"collapse_range": COLLAPSE_RANGE, "insert_range": INSERT_RANGE}
# (offset, length): inside the file, across its end, and past it
RANGES = [(BLOCK, 2 * BLOCK), (3 * BLOCK, 4 * BLOCK), (40 * BLOCK, BLOCK)]
LOWER_DATA = bytes(range(256)) * 64  # 16 KiB, four blocks
LAYERS = [tree({"low": {f"f{i}": LOWER_DATA for i in range(len(MODES))}, "d": {}})]


def look(fd: int) -> tuple[object, ...]:
    """What a file shows through *fd*: its stat summary, a digest of its data, and where
    lseek finds data and holes."""
    st = os.fstat(fd)
    data = os.pread(fd, st.st_size + 1, 0)
    seeks = [
        outcome(partial(os.lseek, fd, off, whence))
        for off in (0, BLOCK, 2 * BLOCK, 5 * BLOCK)
        for whence in (os.SEEK_DATA, os.SEEK_HOLE)
    ]
    return summary(st), hashlib.sha256(data).hexdigest()[:16], seeks


def alloc(path: Path, mode: int, offset: int, length: int) -> object:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size == 0:
            os.write(fd, LOWER_DATA)
        result = outcome(lambda: fallocate(fd, mode, offset, length))
        return result, look(fd)
    finally:
        os.close(fd)


def compare(tmp_path: Path, opts: str, steps_of: Callable[[Mounted], list[Outcome]]) -> list[str]:
    """The differences of *steps_of(m)* on kernel overlayfs and on unionfs with *opts*."""
    results = []
    for kernel in (True, False):
        with writable(tmp_path, LAYERS, kernel=kernel, opts=opts) as m:
            results.append(steps_of(m))
    k, u = results
    assert len(k) == len(u)
    return [
        f"step {i}: kernel={a!r} unionfs={b!r}"
        for i, (a, b) in enumerate(zip(k, u, strict=True))
        if a != b
    ]


def every_mode_steps(m: Mounted) -> list[Outcome]:
    """Each mode on a lower file (a copy-up), then on the copy, then on a new file; with
    metacopy=on the lower file is chmod-ed first, so the mode meets a metacopy file."""
    steps: list[Outcome] = []
    for i, mode in enumerate(MODES.values()):
        lower = m.path(f"low/f{i}")
        steps.append(outcome(partial(os.chmod, lower, 0o640)))
        new = m.path(f"d/new{i}")
        for path in (lower, new):
            for offset, length in RANGES:
                steps.append(outcome(partial(alloc, path, mode, offset, length)))
    return steps


@pytest.mark.parametrize("opts", ["", "metacopy=on"])
def test_fallocate_every_mode_as_on_the_kernel(tmp_path: Path, opts: str) -> None:
    problems = compare(tmp_path, opts, every_mode_steps)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("mode", REFUSED_BY_FUSE.values(), ids=REFUSED_BY_FUSE.keys())
def test_collapse_and_insert_range_are_eopnotsupp_through_fuse(tmp_path: Path, mode: int) -> None:
    with writable(tmp_path, LAYERS) as m:
        fd = os.open(m.path("low/f0"), os.O_RDWR)
        try:
            with pytest.raises(OSError) as info:
                fallocate(fd, mode, BLOCK, BLOCK)
            assert info.value.errno == errno.EOPNOTSUPP
            assert os.pread(fd, len(LOWER_DATA) + 1, 0) == LOWER_DATA
        finally:
            os.close(fd)


def misuse_steps(m: Mounted) -> list[Outcome]:
    """fallocate's errnos: a read-only descriptor, a bad range, a directory."""
    f = m.path("low/f0")

    def on(flags: int, mode: int, offset: int, length: int) -> object:
        fd = os.open(f, flags)
        try:
            return outcome(lambda: fallocate(fd, mode, offset, length)), look(fd)
        finally:
            os.close(fd)

    return [
        outcome(lambda: on(os.O_RDONLY, 0, 0, BLOCK)),
        outcome(lambda: on(os.O_RDWR, 0, -1, BLOCK)),
        outcome(lambda: on(os.O_RDWR, 0, 0, 0)),
        outcome(lambda: on(os.O_WRONLY | os.O_APPEND, KEEP_SIZE, 0, BLOCK)),
        outcome(lambda: on(os.O_RDWR, PUNCH_HOLE | KEEP_SIZE, 1 << 62, 1 << 62)),
    ]


def test_fallocate_errnos_as_on_the_kernel(tmp_path: Path) -> None:
    problems = compare(tmp_path, "", misuse_steps)
    assert not problems, "\n".join(problems)


def seek_and_copy_steps(m: Mounted) -> list[Outcome]:
    """SEEK_DATA/SEEK_HOLE through a descriptor opened on the lower file before another
    punches a hole into the copy; copy_file_range from a lower file into a new one and
    within one file."""
    f, g = m.path("low/f0"), m.path("low/f1")
    steps: list[Outcome] = []
    ro = os.open(f, os.O_RDONLY)
    try:
        steps.append(outcome(lambda: look(ro)))
        steps.append(outcome(lambda: alloc(f, PUNCH_HOLE | KEEP_SIZE, BLOCK, BLOCK)))
        steps.append(outcome(lambda: look(ro)))  # follows the copy-up
    finally:
        os.close(ro)

    def copy(src: Path, dst: Path, count: int, off_in: int, off_out: int) -> object:
        fin = os.open(src, os.O_RDONLY)
        fout = os.open(dst, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            done = outcome(lambda: os.copy_file_range(fin, fout, count, off_in, off_out))
            return done, look(fout)
        finally:
            os.close(fin)
            os.close(fout)

    steps.append(outcome(lambda: copy(g, m.path("d/copy"), 3 * BLOCK, 100, 7)))
    steps.append(outcome(lambda: copy(g, g, BLOCK, 0, 2 * BLOCK)))  # within the file
    steps.append(outcome(lambda: copy(g, g, 2 * BLOCK, 0, BLOCK)))  # overlapping: EINVAL
    steps.append(outcome(lambda: copy(m.path("d/copy"), f, 100, 1 << 40, 0)))  # past EOF: 0
    return steps


def test_lseek_and_copy_file_range_as_on_the_kernel(tmp_path: Path) -> None:
    problems = compare(tmp_path, "", seek_and_copy_steps)
    assert not problems, "\n".join(problems)


def test_fallocate_reaches_the_upper_file(tmp_path: Path) -> None:
    """Not a fallback: the preallocated blocks and the punched hole are in the upper file."""
    with writable(tmp_path, LAYERS) as m:
        fd = os.open(m.path("low/f0"), os.O_RDWR)
        try:
            fallocate(fd, KEEP_SIZE, 0, 64 * BLOCK)
            fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 0, BLOCK)
        finally:
            os.close(fd)
        up = m.upper / "low" / "f0"
        assert up.stat().st_blocks * 512 >= 63 * BLOCK
        assert up.stat().st_size == len(LOWER_DATA)
        fd = os.open(up, os.O_RDONLY)
        try:
            assert os.lseek(fd, 0, os.SEEK_DATA) == BLOCK
        finally:
            os.close(fd)
