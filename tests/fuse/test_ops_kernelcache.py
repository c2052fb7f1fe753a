"""UnionOperations, not mounted: the kernel keeps listings and symlink targets (with the
patched binding), and is told to drop them where a change is behind its back."""

from __future__ import annotations

import pyfuse3
import pytest
from layers import Symlink

from unionfs.fuse import kernelcache
from unionfs.fuse.ops import UnionOperations

from .conftest import MakeOps
from .driver import CTX, ROOT, call, lookup_ino

pytestmark = pytest.mark.skipif(
    not kernelcache.CACHE_SYMLINKS, reason="pyfuse3 without cache_symlinks"
)
listings_kept = pytest.mark.skipif(not kernelcache.CACHE_READDIR, reason="cache_readdir off")

Dropped = list[tuple[int, bool]]


@pytest.fixture
def dropped(monkeypatch: pytest.MonkeyPatch) -> Dropped:
    """What the handlers tell the kernel to drop: (inode, attributes only)."""
    calls: Dropped = []
    monkeypatch.setattr(
        pyfuse3, "invalidate_inode", lambda ino, attr_only=False: calls.append((ino, attr_only))
    )
    return calls


@listings_kept
def test_opendir_lets_the_kernel_keep_the_listing(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {}})
    info = call(ops.opendir, lookup_ino(ops, ROOT, b"d"), CTX)
    assert isinstance(info, pyfuse3.FileInfo)
    assert info.cache_readdir and info.keep_cache
    call(ops.releasedir, info.fh)


def test_the_kernel_keeps_symlink_targets() -> None:
    assert UnionOperations.enable_cache_symlinks


def test_unlink_of_a_symlink_drops_its_target(make_ops: MakeOps, dropped: Dropped) -> None:
    ops = make_ops({"f": "x", "l": Symlink("f")}, upper={})
    link, f = lookup_ino(ops, ROOT, b"l"), lookup_ino(ops, ROOT, b"f")
    call(ops.unlink, ROOT, b"l", CTX)
    assert (link, False) in dropped
    call(ops.unlink, ROOT, b"f", CTX)
    assert all(ino != f for ino, _ in dropped)  # file data is no page of ours to drop


def test_rename_over_a_symlink_drops_both_targets(make_ops: MakeOps, dropped: Dropped) -> None:
    ops = make_ops({"a": Symlink("x"), "b": Symlink("y")}, upper={})
    a, b = lookup_ino(ops, ROOT, b"a"), lookup_ino(ops, ROOT, b"b")
    call(ops.rename, ROOT, b"a", ROOT, b"b", 0, CTX)
    assert {(a, False), (b, False)} <= set(dropped)


@listings_kept
def test_rename_of_a_directory_drops_its_listing(make_ops: MakeOps, dropped: Dropped) -> None:
    """Its ``..`` now names another directory; the kernel drops only the parents' listings."""
    ops = make_ops({}, upper={"d/": {"x": ""}, "e/": {}})
    d, e = lookup_ino(ops, ROOT, b"d"), lookup_ino(ops, ROOT, b"e")
    call(ops.rename, ROOT, b"d", e, b"d", 0, CTX)
    assert (d, False) in dropped
