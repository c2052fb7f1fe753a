"""Operations called directly: the names an inode is known by, across link and rename."""

from __future__ import annotations

import errno

import pyfuse3
from layers import File

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
    # No name and no open descriptor: EEXIST, as the kernel (not an internal error).
    assert fuse_errno(ops.setattr, a, attrs, fields, None, CTX) == errno.EEXIST
