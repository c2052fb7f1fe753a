"""Operations called directly: how many calls into the upper layer the common changes
cost (issue 20). A link or a remove looks its name up once; creating an entry stats it
once it is made; the write-back cache's flush of times the file already has, after a
link, unlink or rename, costs one lstat and no write (any other such request is a
utimensat, which marks the file changed)."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

import pyfuse3
import pytest
from layers import File

from unionfs.fuse.ops import UnionOperations
from unionfs.safepath import LayerDir

from .conftest import MakeOps
from .driver import CTX, ROOT, Fields, call, lookup_ino

Calls = collections.Counter[str]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    """Every call of a ``LayerDir`` method that asks the kernel something, by name."""
    calls: Calls = collections.Counter()
    for name in ("lstat", "utime", "link", "unlink", "chown", "chmod", "getxattr", "open"):
        method = getattr(LayerDir, name)

        def wrapped(*args: object, _m: Callable[..., object] = method, _n: str = name) -> object:
            calls[_n] += 1
            return _m(*args)

        monkeypatch.setattr(LayerDir, name, wrapped)
    yield calls


def test_link_looks_the_new_name_up_once(make_ops: MakeOps, counted: Calls) -> None:
    ops = make_ops({}, upper={"f": File("x"), "d/": {}})
    f = lookup_ino(ops, ROOT, b"f")
    d = lookup_ino(ops, ROOT, b"d")
    counted.clear()
    made = call(ops.link, f, d, b"g", CTX)
    # The lookup of d/g (its lstat, then its .wh. name's), the link, the new name's lstat.
    assert counted == {"lstat": 3, "link": 1}
    assert made.st_nlink == 2 and ops.inodes.get(f).res.st.st_nlink == 2


def test_unlink_looks_the_name_up_once(make_ops: MakeOps, counted: Calls) -> None:
    ops = make_ops({}, upper={"d/": {"f": File("x")}})
    d = lookup_ino(ops, ROOT, b"d")
    counted.clear()
    call(ops.unlink, d, b"f", CTX)
    assert counted == {"lstat": 1, "unlink": 1}


def test_create_stats_the_new_file_once(make_ops: MakeOps, counted: Calls) -> None:
    ops = make_ops({}, upper={"d/": {}})
    d = lookup_ino(ops, ROOT, b"d")
    counted.clear()
    info, _ = call(ops.create, d, b"n", 0o100644, 0, CTX)
    call(ops.release, info.fh)
    # The lookup (two lstat), the new file's lstat, and one open: the descriptor it is
    # made with is the one served; no getxattr for an inode number it cannot have
    # recorded yet.
    assert counted == {"lstat": 3, "open": 1}


def _flush(ops: UnionOperations, ino: int, mtime_ns: int) -> pyfuse3.EntryAttributes:
    """The write-back cache's flush of a file's times: mtime and ctime, no handle."""
    attr = pyfuse3.EntryAttributes()
    attr.st_mtime_ns = mtime_ns
    fields = Fields(update_mtime=True, update_ctime=True)
    return call(ops.setattr, ino, attr, fields, None, CTX)


def test_a_flush_of_the_times_a_file_has_after_a_link_writes_nothing(
    make_ops: MakeOps, counted: Calls
) -> None:
    ops = make_ops({}, upper={"f": File("x")})
    f = lookup_ino(ops, ROOT, b"f")
    call(ops.link, f, ROOT, b"g", CTX)
    mtime = ops.inodes.get(f).res.st.st_mtime_ns
    counted.clear()
    assert _flush(ops, f, mtime).st_mtime_ns == mtime
    assert counted == {"lstat": 1}
    # Only the one flush the link caused: a second such request is a utimensat.
    counted.clear()
    _flush(ops, f, mtime)
    assert counted["utime"] == 1


@pytest.mark.parametrize("removal", ["unlink", "rename"])
def test_a_flush_after_an_unlink_or_rename_writes_nothing(
    make_ops: MakeOps, counted: Calls, removal: str
) -> None:
    ops = make_ops({}, upper={"f": File("x"), "g": File("y")})
    f = lookup_ino(ops, ROOT, b"f")
    call(ops.link, f, ROOT, b"h", CTX)
    _flush(ops, f, ops.inodes.get(f).res.st.st_mtime_ns)
    if removal == "unlink":
        call(ops.unlink, ROOT, b"h", CTX)
    else:
        call(ops.rename, ROOT, b"h", ROOT, b"g", 0, CTX)
    mtime = ops.inodes.get(f).res.st.st_mtime_ns
    counted.clear()
    _flush(ops, f, mtime)
    assert counted == {"lstat": 1}


def test_a_utimensat_of_the_mtime_a_file_has_marks_it_changed(
    make_ops: MakeOps, counted: Calls
) -> None:
    """The same request as the flush, with no link, unlink or rename before it: the
    kernel's utimensat moves the ctime, so ours sets the times."""
    ops = make_ops({}, upper={"f": File("x")})
    f = lookup_ino(ops, ROOT, b"f")
    mtime = ops.inodes.get(f).res.st.st_mtime_ns
    counted.clear()
    assert _flush(ops, f, mtime).st_mtime_ns == mtime
    assert counted["utime"] == 1


def test_a_flush_of_other_times_sets_them(make_ops: MakeOps, counted: Calls) -> None:
    ops = make_ops({}, upper={"f": File("x")})
    f = lookup_ino(ops, ROOT, b"f")
    counted.clear()
    assert _flush(ops, f, 1_500_000_000 * 10**9).st_mtime_ns == 1_500_000_000 * 10**9
    assert counted["utime"] == 1
