"""UnionOperations, not mounted: a direct write leaves no stale page in the kernel (issue 19.10).

The kernel drops the written range of an O_DIRECT write before sending it, and for an
asynchronous one (io_submit) never again: a buffered read answered before the write was
done leaves the old data cached. So a writer opened with O_DIRECT gets direct I/O (none of
its writes uses the page cache) and each direct write drops the inode's pages before its
answer. The mounted behaviour, against kernel overlayfs, is
tests/differential/test_aio_direct_vs_kernel.py.
"""

from __future__ import annotations

import os

import pyfuse3
import pytest

from .conftest import MakeOps
from .driver import CTX, ROOT, call, lookup_ino

Dropped = list[tuple[int, bool]]


@pytest.fixture
def dropped(monkeypatch: pytest.MonkeyPatch) -> Dropped:
    """What the handlers tell the kernel to drop: (inode, attributes only)."""
    calls: Dropped = []
    monkeypatch.setattr(
        pyfuse3, "invalidate_inode", lambda ino, attr_only=False: calls.append((ino, attr_only))
    )
    return calls


def test_an_o_direct_writer_gets_direct_io(make_ops: MakeOps) -> None:
    ops = make_ops({"lower": "lower data"}, upper={})
    f = lookup_ino(ops, ROOT, b"lower")
    info = call(ops.open, f, os.O_RDWR | os.O_DIRECT, CTX)
    assert info.direct_io and ops.room.cached == {}
    made, _ = call(ops.create, ROOT, b"new", 0o644, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, CTX)
    assert made.direct_io and ops.room.cached == {}
    # A reader keeps the page cache (its O_DIRECT reads bypass it by themselves).
    reader = call(ops.open, f, os.O_RDONLY | os.O_DIRECT, CTX)
    assert not reader.direct_io and reader.keep_cache
    for fh in (info.fh, made.fh, reader.fh):
        call(ops.release, fh)


def test_a_direct_write_drops_the_inode_s_pages_before_its_answer(
    make_ops: MakeOps, dropped: Dropped
) -> None:
    ops = make_ops({"lower": "lower data"}, upper={})
    f = lookup_ino(ops, ROOT, b"lower")
    reader = call(ops.open, f, os.O_RDONLY, CTX).fh
    assert call(ops.read, reader, 0, 10) == b"lower data"  # the kernel caches this page
    fh = call(ops.open, f, os.O_WRONLY | os.O_DIRECT, CTX).fh
    dropped.clear()  # (the copy-up may have asked for its own)
    assert call(ops.write, fh, 0, b"UPPER") == 5
    assert dropped == [(f, False)]
    for handle in (fh, reader):
        call(ops.release, handle)


def test_no_drop_while_a_handle_of_the_inode_writes_through_the_page_cache(
    make_ops: MakeOps, dropped: Dropped
) -> None:
    # Its write-back may be in flight on pages the drop would wait for: a deadlock.
    ops = make_ops(upper={"f": "upper data"})
    f = lookup_ino(ops, ROOT, b"f")
    cached = call(ops.open, f, os.O_RDWR, CTX)
    assert not cached.direct_io
    call(ops.read, cached.fh, 0, 4096)
    direct = call(ops.open, f, os.O_RDWR | os.O_DIRECT, CTX).fh
    dropped.clear()
    call(ops.write, direct, 0, b"x")
    assert dropped == []
    call(ops.release, cached.fh)
    call(ops.write, direct, 0, b"y")
    assert dropped == [(f, False)]
    call(ops.release, direct)


def test_a_cached_write_drops_nothing(make_ops: MakeOps, dropped: Dropped) -> None:
    ops = make_ops(upper={"f": "upper data"})
    f = lookup_ino(ops, ROOT, b"f")
    fh = call(ops.open, f, os.O_RDWR, CTX).fh
    dropped.clear()
    call(ops.write, fh, 0, b"x")
    assert dropped == []
    call(ops.release, fh)


def test_nothing_to_drop_where_the_kernel_read_nothing_since_the_last_drop(
    make_ops: MakeOps, dropped: Dropped
) -> None:
    # A writer that only writes (dd oflag=direct) pays no thread hop per write.
    ops = make_ops(upper={"f": "upper data"})
    f = lookup_ino(ops, ROOT, b"f")
    fh = call(ops.open, f, os.O_WRONLY | os.O_DIRECT, CTX).fh
    call(ops.write, fh, 0, b"x")
    assert dropped == []
    reader = call(ops.open, f, os.O_RDONLY, CTX).fh
    call(ops.read, reader, 0, 4096)
    call(ops.write, fh, 0, b"y")
    call(ops.write, fh, 0, b"z")  # nothing read since the last drop
    assert dropped == [(f, False)]
    for handle in (fh, reader):
        call(ops.release, handle)


def test_a_forgotten_inode_has_no_pages_left(make_ops: MakeOps) -> None:
    ops = make_ops(upper={"f": "upper data"})
    f = lookup_ino(ops, ROOT, b"f")
    fh = call(ops.open, f, os.O_RDONLY, CTX).fh
    call(ops.read, fh, 0, 4096)
    call(ops.release, fh)
    assert f in ops.paged
    call(ops.forget, [(f, 1)])
    assert f not in ops.paged
