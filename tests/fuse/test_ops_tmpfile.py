"""Operations called directly: a file made with O_TMPFILE has no name until a link gives
it one; it is made in the upper copy of its directory, served from its own descriptor
meanwhile, and nothing of it stays in the upper when the kernel forgets it unnamed."""

from __future__ import annotations

import os
import stat

from layers import File

from .conftest import MakeOps
from .driver import CTX, ROOT, call, lookup_ino, read_file, upper_tree


def test_an_unnamed_file_is_made_in_the_upper_copy_of_its_directory(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"f": File("lower")}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    info, attrs = call(ops.tmpfile, d, stat.S_IFREG | 0o600, os.O_RDWR, CTX)
    assert (attrs.st_nlink, stat.S_IMODE(attrs.st_mode)) == (0, 0o600)
    assert call(ops.write, info.fh, 0, b"data") == 4
    assert upper_tree(ops) == {"d/": {}}  # the directory copied up, no name in it
    made = call(ops.link, attrs.node_id, d, b"t", CTX)
    assert (made.node_id, made.st_nlink) == (attrs.node_id, 1)
    call(ops.release, info.fh)
    assert upper_tree(ops) == {"d/": {"t": "data"}}
    assert read_file(ops, lookup_ino(ops, d, b"t")) == b"data"
    assert not ops.inodes.get(attrs.node_id).unlinked


def test_an_unnamed_file_the_kernel_forgets_leaves_nothing(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={})
    info, attrs = call(ops.tmpfile, ROOT, stat.S_IFREG | 0o644, os.O_WRONLY, CTX)
    assert ops.inodes.holding == 1
    call(ops.release, info.fh)
    call(ops.forget, [(attrs.node_id, 1)])
    assert ops.inodes.holding == 0
    assert upper_tree(ops) == {}
