"""UnionOperations, not mounted: the handlers that change an entry in place (open for
writing, write, fsync, setattr, setxattr, removexattr), and ``index=on`` hard links."""

from __future__ import annotations

import errno
import os
import stat

import pyfuse3
import pytest
from layers import File, Hardlink

from unionfs.union.stack import Features

from .conftest import MakeOps
from .driver import (
    CTX,
    ROOT,
    call,
    fuse_errno,
    lookup_ino,
    opendir,
    read_file,
    readdir,
    setattr_request,
    upper_tree,
    write_file,
)

# -- open for writing, write, fsync --------------------------------------------------------


def test_write_to_a_lower_file_copies_it_up_first(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"f": "lower data"}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    f = lookup_ino(ops, d, b"f")
    write_file(ops, f, b"LOWER")
    assert read_file(ops, f) == b"LOWER data"
    assert ops.inodes.get(f).res.top == 0 and ops.inodes.get(d).res.top == 0
    assert upper_tree(ops) == {"d/": {"f": "LOWER data"}}


def test_open_with_o_trunc_copies_up_nothing_of_the_data(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "x" * 5000}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    write_file(ops, f, b"new", os.O_WRONLY | os.O_TRUNC)
    assert read_file(ops, f) == b"new"
    assert call(ops.getattr, f, CTX).st_size == 3


def test_a_handle_opened_before_the_copy_up_reads_the_copy(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "old!"}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    reader = call(ops.open, f, os.O_RDONLY, CTX).fh
    write_file(ops, f, b"NEW!")
    assert call(ops.read, reader, 0, 10) == b"NEW!"
    call(ops.release, reader)


def test_write_through_a_read_only_handle_is_ebadf(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"f": "x"})
    fh = call(ops.open, lookup_ino(ops, ROOT, b"f"), os.O_RDONLY, CTX).fh
    assert fuse_errno(ops.write, fh, 0, b"y") == errno.EBADF
    call(ops.release, fh)


def test_fsync_of_a_released_handle_is_ebadf(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"f": "x"})
    fh = call(ops.open, lookup_ino(ops, ROOT, b"f"), os.O_RDWR, CTX).fh
    call(ops.fsync, fh, False)
    call(ops.release, fh)
    assert fuse_errno(ops.fsync, fh, False) == errno.EBADF


# -- setattr -------------------------------------------------------------------------------


def test_chmod_of_a_lower_file_changes_its_copy_only(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"f": File("x", mode=0o644)}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    f = lookup_ino(ops, d, b"f")
    attrs = call(ops.setattr, f, *setattr_request(mode=stat.S_IFREG | 0o600), None, CTX)
    assert attrs.st_mode & 0o7777 == 0o600 and attrs.node_id == f
    assert call(ops.getattr, f, CTX).st_mode & 0o7777 == 0o600
    assert ops.inodes.get(d).res.top == 0
    lower = os.path.join(ops.stack.layers[1].root, "d", "f")
    assert os.stat(lower).st_mode & 0o777 == 0o644


def test_truncate_of_a_lower_file(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "0123456789"}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    assert call(ops.setattr, f, *setattr_request(size=4), None, CTX).st_size == 4
    assert read_file(ops, f) == b"0123"
    call(ops.setattr, f, *setattr_request(size=0), None, CTX)
    assert upper_tree(ops) == {"f": ""}


def test_utimens_sets_the_times_asked_for(make_ops: MakeOps) -> None:
    ops = make_ops({"f": ""}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    when = 1_600_000_000_123_456_789
    attrs = call(ops.setattr, f, *setattr_request(mtime_ns=when), None, CTX)
    assert attrs.st_mtime_ns == when
    assert os.stat(os.path.join(ops.stack.layers[0].root, "f")).st_mtime_ns == when


def test_chown_of_a_lower_directory(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"x": ""}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    attrs = call(ops.setattr, d, *setattr_request(uid=1234, gid=5678), None, CTX)
    assert (attrs.st_uid, attrs.st_gid) == (1234, 5678)
    st = os.stat(os.path.join(ops.stack.layers[0].root, "d"))
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert ops.inodes.get(d).res.layers == (0, 1)


# -- xattrs --------------------------------------------------------------------------------


def test_setxattr_copies_up_and_keeps_the_other_xattrs(make_ops: MakeOps) -> None:
    ops = make_ops({"f": File("x", xattrs={"user.old": "1"})}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    call(ops.setxattr, f, b"user.new", b"2", CTX)
    assert call(ops.getxattr, f, b"user.new", CTX) == b"2"
    assert sorted(call(ops.listxattr, f, CTX)) == [b"user.new", b"user.old"]
    assert ops.inodes.get(f).res.top == 0


def test_removexattr_of_a_missing_xattr_is_enodata_and_copies_nothing(
    make_ops: MakeOps,
) -> None:
    ops = make_ops({"f": File("x", xattrs={"user.old": "1"})}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    assert fuse_errno(ops.removexattr, f, b"user.absent", CTX) == pyfuse3.ENOATTR
    assert upper_tree(ops) == {}
    call(ops.removexattr, f, b"user.old", CTX)
    assert fuse_errno(ops.getxattr, f, b"user.old", CTX) == pyfuse3.ENOATTR


def test_an_overlay_xattr_set_through_the_mount_is_user_data(make_ops: MakeOps) -> None:
    """Stored escaped (the kernel's trusted.overlay.overlay.X), so it marks nothing."""
    ops = make_ops({"d/": {}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    call(ops.setxattr, d, b"trusted.overlay.opaque", b"y", CTX)
    assert call(ops.getxattr, d, b"trusted.overlay.opaque", CTX) == b"y"
    upper_d = os.path.join(ops.stack.layers[0].root, "d")
    assert os.getxattr(upper_d, b"trusted.overlay.overlay.opaque") == b"y"
    assert not ops.stack.layers[0].is_opaque(b"d")


# -- index=on: the names of a lower hard link ---------------------------------------------

INDEXED = Features("on", index=True)


def test_with_index_a_lookup_of_another_name_shows_the_copy_and_writes_nothing(
    make_ops: MakeOps,
) -> None:
    """chmod 600 x/a; stat y/b: one inode, mode 600, count 2; the upper holds x/a alone,
    as kernel overlayfs's does with index=on."""
    ops = make_ops({"x/a": "data", "y/b": Hardlink("x/a")}, upper={}, features=INDEXED)
    x = lookup_ino(ops, ROOT, b"x")
    a = lookup_ino(ops, x, b"a")
    call(ops.setattr, a, *setattr_request(mode=stat.S_IFREG | 0o600), None, CTX)
    y = lookup_ino(ops, ROOT, b"y")
    b = call(ops.lookup, y, b"b", CTX)
    assert b.node_id == a and b.st_mode & 0o777 == 0o600 and b.st_nlink == 2
    assert read_file(ops, a) == b"data"
    assert upper_tree(ops) == {"x/": {"a": "data"}}
    write_file(ops, b.node_id, b"DATA")  # written by the name y/b: now it is linked up
    assert upper_tree(ops) == {"x/": {"a": "DATA"}, "y/": {"b": "DATA"}}
    assert call(ops.getattr, a, CTX).st_nlink == 2


def test_with_index_a_listing_taken_before_a_copy_up_shows_the_copy_after_it(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing of a directory without an upper part is kept on its node; a copy-up of
    a hard link's name elsewhere changes what a name in it shows, so it is not kept."""
    ops = make_ops({"x/a": "data", "y/b": Hardlink("x/a")}, upper={}, features=INDEXED)
    y = lookup_ino(ops, ROOT, b"y")

    def listed_mode() -> int:
        fh = opendir(ops, y)
        try:
            entries = readdir(ops, monkeypatch, fh).accepted
        finally:
            call(ops.releasedir, fh)
        return next(e.attrs.st_mode for e in entries if e.name == b"b") & 0o777

    assert listed_mode() == 0o644
    a = lookup_ino(ops, lookup_ino(ops, ROOT, b"x"), b"a")
    call(ops.setattr, a, *setattr_request(mode=stat.S_IFREG | 0o600), None, CTX)
    assert listed_mode() == 0o600
    assert call(ops.getattr, a, CTX).st_mode & 0o777 == 0o600


def test_a_copied_up_file_without_a_name_shows_no_link_through_any_handle(
    make_ops: MakeOps,
) -> None:
    """Opened for reading (a lower descriptor), then for writing (copied up), then
    unlinked: the kernel's one overlay inode, now upper, says nlink 0 through either
    descriptor, and still once the writer is closed."""
    ops = make_ops({"f": "data"}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    reader = call(ops.open, f, os.O_RDONLY, CTX).fh
    writer = call(ops.open, f, os.O_RDWR, CTX).fh
    call(ops.unlink, ROOT, b"f", CTX)
    assert call(ops.getattr, f, CTX).st_nlink == 0
    call(ops.release, writer)
    assert call(ops.getattr, f, CTX).st_nlink == 0
    call(ops.release, reader)


def test_a_lower_file_without_a_name_keeps_its_own_count_while_open(make_ops: MakeOps) -> None:
    """Never copied up: the overlay inode is the lower file, whose count the kernel shows."""
    ops = make_ops({"f": "data"}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    reader = call(ops.open, f, os.O_RDONLY, CTX).fh
    call(ops.unlink, ROOT, b"f", CTX)
    assert call(ops.getattr, f, CTX).st_nlink == 1
    assert call(ops.read, reader, 0, 10) == b"data"
    call(ops.release, reader)
