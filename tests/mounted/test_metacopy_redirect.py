"""Metadata-only copy-up and directory renames on a real mount, measured on the upper.

``chmod``/``chown`` of a 1 GiB lower file with ``metacopy=on`` writes almost nothing to
the upper filesystem (the file's data stays below until it is opened for writing); ``mv``
of a lower directory copies only the directory itself; kernel overlayfs with the same
options reads the result.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mountutil import File, tree
from writeutil import Mounted, kernel_view, writable

GIB = 1 << 30
MIB = 1 << 20
LAYERS = [tree({"big": b"", "d": {"sub": {"x": b"x"}, "y": b"y"}})]


def fill(lowers: list[Path]) -> None:
    """A 1 GiB lower file with 4 KiB of real data in every MiB: 4 MiB allocated, so a
    copy-up of its data (holes kept) would write at least that much."""
    fd = os.open(lowers[0] / "big", os.O_WRONLY)
    try:
        for offset in range(0, GIB, MIB):
            os.pwrite(fd, b"D" * 4096, offset)
        os.ftruncate(fd, GIB)
    finally:
        os.close(fd)


def allocated(top: Path) -> int:
    """Bytes the filesystem allocated for *top* and everything below it."""
    total = os.lstat(top).st_blocks * 512
    for dirpath, _dirnames, filenames in os.walk(top):
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Mounted]:
    with writable(tmp_path, LAYERS, prepare=fill, opts="metacopy=on") as m:
        yield m


def test_chmod_and_chown_of_a_1gib_file_write_under_1mib(mounted: Mounted) -> None:
    assert allocated(mounted.lowers[0] / "big") >= 4 * MIB
    os.chmod(mounted.path("big"), 0o600)
    os.chown(mounted.path("big"), 1000, 1000)
    os.utime(mounted.path("big"), ns=(1, 2))
    up = mounted.upper / "big"
    assert os.getxattr(up, "trusted.overlay.metacopy") == b""
    assert up.stat().st_size == GIB
    assert allocated(mounted.upper) < MIB
    st = os.stat(mounted.path("big"))
    assert (st.st_size, st.st_uid, st.st_mode & 0o777) == (GIB, 1000, 0o600)
    with open(mounted.path("big"), "rb") as f:
        f.seek(5 * MIB)
        assert f.read(8) == b"DDDDDDDD"  # the data still comes from below


def test_first_write_brings_the_data_up(mounted: Mounted) -> None:
    os.chmod(mounted.path("big"), 0o640)
    with open(mounted.path("big"), "r+b") as f:
        f.seek(MIB + 10)
        f.write(b"W")
    up = mounted.upper / "big"
    assert "trusted.overlay.metacopy" not in os.listxattr(up)
    with open(up, "rb") as f:
        f.seek(MIB)
        assert f.read(12) == b"D" * 10 + b"W" + b"D"
    assert allocated(mounted.upper) >= 4 * MIB


def test_mv_of_a_lower_dir_copies_only_the_dir(mounted: Mounted, tmp_path: Path) -> None:
    os.rename(mounted.path("d"), mounted.path("e"))
    assert sorted(os.listdir(mounted.path("e"))) == ["sub", "y"]
    assert not mounted.path("d").exists()
    assert os.listdir(mounted.upper / "e") == []
    assert os.getxattr(mounted.upper / "e", "trusted.overlay.redirect") == b"d"
    assert mounted.path("e/sub/x").read_bytes() == b"x"
    mounted_view = sorted(os.listdir(mounted.path("e/sub")))
    assert mounted_view == ["x"]


def test_kernel_reads_the_renamed_dir_and_the_metacopy_file(tmp_path: Path) -> None:
    small = [tree({"f": b"data" * 100, "d": {"sub": {"x": b"x"}}})]
    with writable(tmp_path, small, opts="metacopy=on") as m:
        os.chmod(m.path("f"), 0o600)
        os.rename(m.path("d"), m.path("e"))
        os.rename(m.path("e/sub"), m.path("s2"))
        lowers, upper = m.lowers, m.upper
    view = kernel_view(tmp_path, lowers, upper, "redirect_dir=on,metacopy=on")
    expected = hashlib.sha256(b"data" * 100).hexdigest()[:16]
    assert view[b"f"]["content"] == f"sha256:{expected} (400 bytes)"
    assert view[b"f"]["mode"] == "0o600"
    assert b"d" not in view and b"e" in view and b"s2/x" in view and b"e/sub" not in view


LINKED = [tree({"a": {"h1": File(b"linked", link=1)}, "b": {"h2": File(b"", link=1)}})]


def test_hard_links_keep_one_inode_through_lookup_readdir_and_copy_up(tmp_path: Path) -> None:
    with writable(tmp_path, LINKED, opts="index=on") as m:

        def seen() -> list[tuple[int, int, int]]:
            listed = {e.name: e.inode() for d in ("a", "b") for e in os.scandir(m.path(d))}
            out = []
            for rel in ("a/h1", "b/h2"):
                st = os.stat(m.path(rel))
                out.append((st.st_ino, st.st_nlink, listed[rel[2:]]))
            return out

        before = seen()
        assert before[0] == before[1] and before[0][0] == before[0][2]
        assert before[0][1] == 2
        with open(m.path("a/h1"), "r+b") as f:
            f.write(b"LINKED")
        after = seen()
        assert after == before  # the same inode, count and readdir inode after copy-up
        assert m.path("b/h2").read_bytes() == b"LINKED"
        os.unlink(m.path("a/h1"))
        assert os.stat(m.path("b/h2")).st_nlink == 1
        assert m.path("b/h2").read_bytes() == b"LINKED"
