"""A listing read in pieces while a file of it gains and loses a name keeps the kernel's
link count right (issue 19.9, pjdfstest link/03.t under load).

unionfs answered the READDIRPLUS requests after the first with the attributes of the
listing's snapshot; the kernel applied them to its cached inode, so a ``link`` done in
between was forgotten (nlink 1 again), the ``unlink`` of the new name took the count to 0,
and the next ``link`` failed with ENOENT (``vfs_link`` refuses an inode with no links).
Here the pieces are getdents64 calls, one FUSE request each, with the changes between
them: no timing, no load needed. Kernel overlayfs is the oracle.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from pathlib import Path

import pytest
from mountutil import tree
from writeutil import Mounted, on_both, outcome

SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61}.get(platform.machine())
pytestmark = pytest.mark.skipif(SYS_GETDENTS64 is None, reason="getdents64 number unknown here")
_libc = ctypes.CDLL(None, use_errno=True)

# Enough names with long enough names that one page of READDIRPLUS holds a part of them.
NAMES = [f"f{i:03d}_{'x' * 40}" for i in range(80)]
LAYERS = [tree({"low": {name: b"x" for name in NAMES}, "other": {}})]


def getdents(fd: int) -> list[bytes]:
    """One getdents64 call on *fd*: the names it gives (``.`` and ``..`` left out). With a
    buffer of one page the kernel's FUSE asks for one page of READDIRPLUS entries (it sizes
    its request by the caller's buffer), which holds fewer entries than the buffer."""
    buf = ctypes.create_string_buffer(4096)
    n = _libc.syscall(SYS_GETDENTS64, fd, buf, len(buf))
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    names, pos = [], 0
    while pos < n:
        _ino, _off, reclen, _type = struct.unpack_from("QqHB", buf.raw, pos)
        name = buf.raw[pos + 19 : pos + reclen].split(b"\0", 1)[0]
        if name not in (b".", b".."):
            names.append(name)
        pos += reclen
    return names


def link_unlink_link_while_listing(m: Mounted) -> list[object]:
    """Begin listing ``low``; link one of its files not listed yet to ``other/w``; list
    the rest; unlink ``other/w``; link the file again (pjdfstest's link/03.t steps), and
    unlink that name too."""
    low, other = m.path("low"), m.path("other")
    fd = os.open(low, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = getdents(fd)
        unseen = [n for n in NAMES if n.encode() not in first]
        victim = low / (unseen[0] if unseen else NAMES[-1])  # the kernel's: all at once
        steps: list[object] = [outcome(lambda: os.link(victim, other / "w"))]
        steps.append(os.lstat(victim).st_nlink)
        rest: list[bytes] = []
        while more := getdents(fd):
            rest += more
        steps.append(sorted(n.decode() for n in first + rest) == sorted(NAMES))
    finally:
        os.close(fd)
    steps.append(os.lstat(victim).st_nlink)
    steps.append(outcome(lambda: os.unlink(other / "w")))
    steps.append(os.lstat(victim).st_nlink)
    steps.append(outcome(lambda: os.link(victim, other / "w2")))
    steps.append(os.lstat(victim).st_nlink)
    # Which file was linked depends on how the listing was cut: leave the trees alike.
    steps.append(outcome(lambda: os.unlink(other / "w2")))
    return steps


def test_link_counts_across_a_listing_read_in_pieces(tmp_path: Path) -> None:
    assert on_both(tmp_path, LAYERS, link_unlink_link_while_listing) == []
