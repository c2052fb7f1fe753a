"""The block count a file shows after writes and fsync, as on kernel overlayfs (which shows
its upper file's): xfstests read it with ``stat -c %b`` after ``xfs_io -c fsync``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from write_pairs import DEFAULT_FEATURES, Pair, rich_stack
from writeutil import Parent, fallocate

PUNCH_HOLE = 0x01 | 0x02  # with KEEP_SIZE


def written_synced(path: bytes, offset: int, size: int, datasync: bool, punch: int = 0) -> object:
    """Write *size* bytes at *offset* (and punch the first *punch* bytes), fsync (or
    fdatasync), then fstat through the same descriptor: size and blocks."""

    def run(root: int) -> object:
        with Parent(root, path) as p:
            fd = os.open(p.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=p.fd)
        try:
            os.pwrite(fd, b"x" * size, offset)
            if punch:
                fallocate(fd, PUNCH_HOLE, 0, punch)
            (os.fdatasync if datasync else os.fsync)(fd)
            st = os.fstat(fd)
            return st.st_size, st.st_blocks
        finally:
            os.close(fd)

    return run


def test_blocks_after_fsync_match_kernel() -> None:
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-blocks-")), rich_stack(),
                unionfs_forms=False, features=DEFAULT_FEATURES)  # fmt: skip
    pair.check_reads = False
    pair.run([
        ("a new sparse file", written_synced(b"sparse", 1 << 20, 10, datasync=False)),
        ("more of it, fdatasync", written_synced(b"sparse", 0, 65536, datasync=True)),
        ("a lower file grown", written_synced(b"f", 8192, 4096, datasync=False)),
        ("a hole punched", written_synced(b"big", 0, 4096, datasync=False, punch=65536)),
    ])  # fmt: skip
