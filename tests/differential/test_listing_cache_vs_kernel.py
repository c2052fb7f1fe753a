"""A directory listing the kernel keeps (FOPEN_CACHE_DIR, with the patched pyfuse3) follows
a change that the kernel does not see as one of the directory's own: a directory moved to
another parent lists the new parent as ``..``, as on kernel overlayfs. Read with
getdents64 itself, since ``os.scandir`` leaves out ``.`` and ``..``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from pathlib import Path

import pytest
from mountutil import tree
from writeutil import writable

SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61}.get(platform.machine())
pytestmark = pytest.mark.skipif(SYS_GETDENTS64 is None, reason="getdents64 number unknown here")
_libc = ctypes.CDLL(None, use_errno=True)


def dirents(path: Path) -> dict[bytes, int]:
    """Every name readdir gives for *path*, ``.`` and ``..`` included, with its d_ino."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    found: dict[bytes, int] = {}
    buf = ctypes.create_string_buffer(1 << 16)
    try:
        while (n := _libc.syscall(SYS_GETDENTS64, fd, buf, len(buf))) > 0:
            pos = 0
            while pos < n:
                ino, _off, reclen, _type = struct.unpack_from("QqHB", buf.raw, pos)
                name = buf.raw[pos + 19 : pos + reclen].split(b"\0", 1)[0]
                found[name] = ino
                pos += reclen
        if n < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)
    return found


LAYERS = [tree({"a": {"keep": b"k"}, "b": {}})]


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "unionfs"])
def test_a_moved_directory_lists_its_new_parent(tmp_path: Path, kernel: bool) -> None:
    with writable(tmp_path, LAYERS, kernel=kernel, opts="redirect_dir=on") as m:
        (m.path("a") / "d").mkdir()
        (m.path("a") / "d" / "x").write_bytes(b"x")
        before = dirents(m.path("a/d"))  # read (and kept) while in a
        assert before[b".."] == os.stat(m.path("a")).st_ino
        os.rename(m.path("a/d"), m.path("b/d"))
        after = dirents(m.path("b/d"))
        assert after[b".."] == os.stat(m.path("b")).st_ino
        assert sorted(after) == [b".", b"..", b"x"]
