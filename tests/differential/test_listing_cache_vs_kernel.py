"""A directory listing the kernel keeps (FOPEN_CACHE_DIR, with the patched pyfuse3) follows
a change that the kernel does not see as one of the directory's own: a directory moved to
another parent lists the new parent as ``..``, as on kernel overlayfs; and after every
kind of change (names made, removed, moved, replaced, copied up, linked) each listing,
read before the change and so kept, shows what the kernel's shows. Read with getdents64
itself, since ``os.scandir`` leaves out ``.`` and ``..``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from mountutil import File, tree
from writeutil import Mounted, outcome, writable

from unionfs.safecalls import RENAME_EXCHANGE, renameat2

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


# -- every kind of change, with the listings read (and kept) before it ------------------------

LOWER = tree({
    "a": {"f1": b"1", "f2": b"2", "sub": {"x": b"x"}, "hl": File(b"h", link=1)},
    "b": {"g": b"g", "hl2": File(b"h", link=1), "hl5": File(b"i", link=2),
          "hl8": File(b"j", link=3)},
    "m": {"keep": b"k", "sub": {"y": b"y"}, "hl6": File(b"i", link=2),
          "hl9": File(b"j", link=3)},
    "p": {"q": b"q", "r": {"s": b"s"}},
    "e": {},
})  # fmt: skip
WATCHED = ["", "a", "a/sub", "b", "b/sub", "m", "m/sub", "p", "e", "e/d"]


def _rename(m: Mounted, old: str, new: str, flags: int = 0) -> None:
    fd = os.open(m.path(), os.O_PATH)
    try:
        renameat2(fd, old.encode(), fd, new.encode(), flags)
    finally:
        os.close(fd)


def _rm_tree(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            _rm_tree(child)
        else:
            child.unlink()
    path.rmdir()


def _append(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"more")


STEPS: list[tuple[str, Callable[[Mounted], object]]] = [
    ("create", lambda m: m.path("a/new").write_bytes(b"n")),
    ("unlink a lower file (whiteout)", lambda m: m.path("a/f1").unlink()),
    ("unlink an upper file", lambda m: m.path("a/new").unlink()),
    ("rename out of a directory", lambda m: _rename(m, "a/f2", "b/f2")),
    ("rename into a directory", lambda m: _rename(m, "b/g", "a/g")),
    ("rename within a directory", lambda m: _rename(m, "a/g", "a/g2")),
    ("rename over a name", lambda m: _rename(m, "b/f2", "a/g2")),
    ("mkdir", lambda m: m.path("e/d").mkdir()),
    ("mkdir below", lambda m: m.path("e/d/dd").mkdir()),
    ("rmdir", lambda m: m.path("e/d/dd").rmdir()),
    ("rmdir of a lower directory", lambda m: _rm_tree(m.path("p/r"))),
    ("a merged directory replaced (opaque)",
     lambda m: (_rm_tree(m.path("m/sub")), m.path("m/sub").mkdir(),
                m.path("m/sub/z").write_bytes(b"z"))),
    ("a listed directory replaced by an empty one",
     lambda m: (_rm_tree(m.path("p")), m.path("p").mkdir())),
    ("copy-up of a file", lambda m: _append(m.path("a/sub/x"))),
    ("copy-up of a directory (chmod)", lambda m: m.path("m").chmod(0o700)),
    ("chmod of a directory back", lambda m: m.path("m").chmod(0o755)),
    ("copy-up of a hard link", lambda m: _append(m.path("a/hl"))),
    ("chmod of a lower hard link", lambda m: m.path("b/hl5").chmod(0o600)),
    ("truncate of a lower hard link to 0", lambda m: os.truncate(m.path("b/hl8"), 0)),
    ("link", lambda m: os.link(m.path("a/hl"), m.path("e/hl3"))),
    ("link of a lower file", lambda m: os.link(m.path("b/hl2"), m.path("e/hl4"))),
    ("symlink", lambda m: os.symlink("g2", m.path("a/sl"))),
    ("mkfifo", lambda m: os.mkfifo(m.path("b/fifo"))),
    ("exchange a file and a directory",
     lambda m: _rename(m, "a/sl", "e/d", RENAME_EXCHANGE)),
    ("a directory moved to another parent", lambda m: _rename(m, "a/sub", "b/sub")),
    ("a directory moved back", lambda m: _rename(m, "b/sub", "a/sub")),
    ("exchange two directories", lambda m: _rename(m, "a/sub", "m/sub", RENAME_EXCHANGE)),
    ("a lower file replaced by a directory",
     lambda m: (m.path("m/keep").unlink(), m.path("m/keep").mkdir())),
    ("a directory replaced by a file",
     lambda m: (m.path("m/keep").rmdir(), m.path("m/keep").write_bytes(b"k"))),
]


def listings(m: Mounted) -> dict[str, object]:
    """Each watched directory's listing: names with their type, whether each d_ino is the
    number lstat shows (``..``: the parent's), or the errno of reading it."""
    seen: dict[str, object] = {}
    for rel in WATCHED:
        path = m.path(rel)
        try:
            ents = dirents_typed(path)
            numbers = {b".": os.lstat(path).st_ino, b"..": os.lstat(path.parent).st_ino}
            if not rel:
                ents.pop(b"..")  # the root's: what the mount point covers
            seen[rel] = sorted(
                (name, kind_, ino == (numbers[name] if name in numbers
                                      else os.lstat(path / os.fsdecode(name)).st_ino))
                for name, (ino, kind_) in ents.items()
            )  # fmt: skip
        except OSError as exc:
            seen[rel] = exc.errno
    return seen


def dirents_typed(path: Path) -> dict[bytes, tuple[int, int]]:
    """Like ``dirents``, with each entry's d_type."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    found: dict[bytes, tuple[int, int]] = {}
    buf = ctypes.create_string_buffer(1 << 16)
    try:
        while (n := _libc.syscall(SYS_GETDENTS64, fd, buf, len(buf))) > 0:
            pos = 0
            while pos < n:
                ino, _off, reclen, type_ = struct.unpack_from("QqHB", buf.raw, pos)
                name = buf.raw[pos + 19 : pos + reclen].split(b"\0", 1)[0]
                found[name] = (ino, type_)
                pos += reclen
        if n < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)
    return found


def run_steps(base: Path, kernel: bool, opts: str) -> list[tuple[str, object, dict[str, object]]]:
    """Every step's outcome and the listings after it; every listing is read before each
    step too (the kernel keeps it), and again after."""
    seen = []
    with writable(base, [LOWER], kernel=kernel, opts=opts) as m:
        seen.append(("start", None, listings(m)))
        for name, step in STEPS:
            listings(m)
            result = outcome(lambda step=step: step(m) and None)  # type: ignore[misc]
            seen.append((name, result, listings(m)))
    return seen


@pytest.mark.parametrize("opts", ["redirect_dir=on", "redirect_dir=on,index=on"])
def test_every_change_shows_in_kept_listings_as_on_the_kernel(tmp_path: Path, opts: str) -> None:
    kernel = run_steps(tmp_path, kernel=True, opts=opts)
    ours = run_steps(tmp_path, kernel=False, opts=opts)
    for (name, k_result, k_seen), (_, u_result, u_seen) in zip(kernel, ours, strict=True):
        assert u_result == k_result, name
        for rel in WATCHED:
            assert u_seen[rel] == k_seen[rel], (name, rel)
