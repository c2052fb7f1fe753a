"""Operations called directly: the names an inode is known by, across link and rename."""

from __future__ import annotations

import pyfuse3
from layers import File, Hardlink

from unionfs.union.stack import Features

from .conftest import MakeOps
from .driver import CTX, ROOT, call, fuse_errno, lookup_ino


def test_renaming_one_name_of_a_hard_link_keeps_the_other(make_ops: MakeOps) -> None:
    ops = make_ops({"sub/": {}}, upper={"a": File("x")})
    a = lookup_ino(ops, ROOT, b"a")
    call(ops.link, a, ROOT, b"new", CTX)
    assert lookup_ino(ops, ROOT, b"a") == a  # the node last resolved by "a"
    sub = lookup_ino(ops, ROOT, b"sub")
    call(ops.rename, ROOT, b"new", sub, b"n2", 0, CTX)
    call(ops.unlink, ROOT, b"a", CTX)
    node = ops.inodes.get(a)
    assert node.names == {b"sub/n2"} and node.res.path == b"sub/n2"
    call(ops.unlink, sub, b"n2", CTX)
    assert ops.inodes.get(a).unlinked
    attrs = pyfuse3.EntryAttributes()
    fields = pyfuse3.SetattrFields()
    assert not fields.update_mtime
    # No name and no open descriptor: the file itself changes (a chown to -1, -1), as
    # the kernel's overlay inode changes its upper inode; never through a path.
    assert call(ops.setattr, a, attrs, fields, None, CTX).st_nlink == 0


def test_with_index_removing_the_name_a_node_was_last_found_by(make_ops: MakeOps) -> None:
    """Names of a lower hard link are one node; after one of them is removed (copied up
    into the index first) the node resolves by another, which shows the indexed copy
    (not linked up: a lookup writes nothing)."""
    ops = make_ops(
        {"a": File("data"), "d/": {"b": Hardlink("a")}}, upper={},
        features=Features("on", index=True),
    )  # fmt: skip
    a = lookup_ino(ops, ROOT, b"a")
    d = lookup_ino(ops, ROOT, b"d")
    assert lookup_ino(ops, d, b"b") == a  # one inode; the node now says d/b
    call(ops.unlink, d, b"b", CTX)
    node = ops.inodes.get(a)
    assert not node.unlinked and node.res.path == b"a" and node.res.index_copy is not None
    assert call(ops.getattr, a, CTX).st_nlink == 1
    assert fuse_errno(ops.getxattr, a, b"user.x", CTX) == pyfuse3.ENOATTR
