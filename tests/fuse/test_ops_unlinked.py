"""Operations called directly: a file whose last name went while the kernel holds it is
served from the file itself, never by its old path (issue 16.2), and its node id is never
given to another file (issue 16.2, 16.7).

The kernel's overlay inode keeps a reference to its upper inode: an unlinked or renamed-
over file still changes (chmod, truncate, times, xattrs) and reopens (through
``/proc/self/fd``) as itself, with nlink 0, whatever now lives at its old name.
"""

from __future__ import annotations

import errno
import os
import stat

import pytest
from layers import File

from unionfs.fuse.ops import UnionOperations

from .conftest import MakeOps
from .driver import (
    CTX,
    ROOT,
    call,
    fuse_errno,
    lookup_ino,
    read_file,
    setattr_request,
    upper_tree,
    write_file,
)


def made(ops: UnionOperations, name: bytes, data: bytes) -> int:
    """Create *name* in the root with *data* (and close it): its node id."""
    info, attrs = call(ops.create, ROOT, name, stat.S_IFREG | 0o644, os.O_WRONLY, CTX)
    call(ops.write, info.fh, 0, data)
    call(ops.release, info.fh)
    return int(attrs.node_id)


def test_a_new_file_by_the_old_name_gets_a_new_node_and_its_own_data(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={})
    a = made(ops, b"a", b"A" * 8192)
    call(ops.unlink, ROOT, b"a", CTX)
    b = made(ops, b"a", b"B" * 100)
    assert b != a
    assert call(ops.getattr, a, CTX).st_size == 8192
    assert call(ops.getattr, a, CTX).st_nlink == 0
    assert (call(ops.getattr, b, CTX).st_size, read_file(ops, b)) == (100, b"B" * 100)
    assert read_file(ops, a) == b"A" * 8192  # a reopen through /proc: the held file


@pytest.mark.parametrize("how", ["unlink", "rename over"])
def test_changes_of_a_held_file_reach_it_and_never_the_new_name(
    make_ops: MakeOps, how: str
) -> None:
    ops = make_ops({}, upper={"a": File("old data", mode=0o644), "other": File("other")})
    a = lookup_ino(ops, ROOT, b"a")
    if how == "unlink":
        call(ops.unlink, ROOT, b"a", CTX)
        made(ops, b"a", b"the new file")
    else:
        lookup_ino(ops, ROOT, b"other")
        call(ops.rename, ROOT, b"other", ROOT, b"a", 0, CTX)
    got = call(ops.setattr, a, *setattr_request(mode=stat.S_IFREG | 0o600), None, CTX)
    assert (got.st_mode & 0o777, got.st_nlink) == (0o600, 0)
    got = call(ops.setattr, a, *setattr_request(mtime_ns=10**18), None, CTX)
    assert got.st_mtime_ns == 10**18
    got = call(ops.setattr, a, *setattr_request(size=3), None, CTX)
    assert got.st_size == 3
    call(ops.setxattr, a, b"user.held", b"1", CTX)
    assert call(ops.getxattr, a, b"user.held", CTX) == b"1"
    assert b"user.held" in call(ops.listxattr, a, CTX)
    call(ops.removexattr, a, b"user.held", CTX)
    write_file(ops, a, b"HELD")
    assert read_file(ops, a) == b"HELD"
    now = os.lstat(os.path.join(ops.stack.upper.root, "a"))
    assert stat.S_IMODE(now.st_mode) == 0o644 and now.st_mtime_ns != 10**18
    assert upper_tree(ops)["a"] == ("the new file" if how == "unlink" else "other")
    assert os.listxattr(os.path.join(ops.stack.upper.root, "a")) == []


def test_fchmod_through_a_lower_descriptor_of_a_copied_up_then_unlinked_file(
    make_ops: MakeOps,
) -> None:
    """Opened read-only while lower, copied up by a chmod, then unlinked: the kernel's
    overlay inode is the upper file, so fchmod works (it answered EEXIST here: the CI
    failure of test_write_vs_kernel)."""
    ops = make_ops({"f": File("lower data", mode=0o644)}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    fh = call(ops.open, f, os.O_RDONLY, CTX).fh
    try:
        call(ops.setattr, f, *setattr_request(mode=stat.S_IFREG | 0o640), None, CTX)
        call(ops.unlink, ROOT, b"f", CTX)
        got = call(ops.setattr, f, *setattr_request(mode=stat.S_IFREG | 0o600), fh, CTX)
        assert (got.st_mode & 0o777, got.st_nlink) == (0o600, 0)
        assert call(ops.read, fh, 0, 100) == b"lower data"
    finally:
        call(ops.release, fh)


def test_a_lower_file_never_copied_up_answers_eexist_once_unlinked(make_ops: MakeOps) -> None:
    """As the kernel: it cannot copy up what has no name (the whiteout stands there). The
    write-back cache's flush of the time it was given is no change and succeeds."""
    ops = make_ops({"f": File("lower data", mode=0o644)}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    mtime = call(ops.getattr, f, CTX).st_mtime_ns
    call(ops.unlink, ROOT, b"f", CTX)
    request = setattr_request(mode=stat.S_IFREG | 0o600)
    assert fuse_errno(ops.setattr, f, *request, None, CTX) == errno.EEXIST
    assert call(ops.setattr, f, *setattr_request(mtime_ns=mtime), None, CTX).st_nlink == 0
    assert fuse_errno(ops.open, f, os.O_RDWR, CTX) == errno.EEXIST
    assert fuse_errno(ops.setxattr, f, b"user.x", b"1", CTX) == errno.EEXIST
    assert read_file(ops, f) == b"lower data"
    assert "f" not in upper_tree(ops) or upper_tree(ops)["f"] != b"lower data"


def test_the_held_file_is_let_go_when_the_kernel_forgets_the_node(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"a": File("x")})
    a = lookup_ino(ops, ROOT, b"a")
    call(ops.unlink, ROOT, b"a", CTX)
    held = ops.inodes.get(a).held
    assert held is not None
    fd = held.fd
    os.fstat(fd)
    call(ops.forget, [(a, 1)])
    assert held.fd == -1 and ops.inodes.find(a) is None
    with pytest.raises(OSError):
        os.fstat(fd)  # closed (the number is not reused in between: nothing opens)


def test_a_node_id_is_never_given_out_again(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={})
    seen = set()
    for _ in range(5):
        ino = made(ops, b"a", b"x")
        assert ino not in seen
        seen.add(ino)
        call(ops.unlink, ROOT, b"a", CTX)
        call(ops.forget, [(ino, 1)])
    assert len(ops.inodes) == 1


def test_a_new_file_shows_its_own_number_without_separate_ids_too(make_ops: MakeOps) -> None:
    """Without separate ids (a stock pyfuse3) the number is the node id: a file made while
    the unlinked one is held gets another, and neither lends the other its data."""
    ops = make_ops({}, upper={}, separate_ids=False)
    a = made(ops, b"a", b"A" * 50)
    call(ops.unlink, ROOT, b"a", CTX)
    b = made(ops, b"b", b"B")
    assert b != a
    assert read_file(ops, b) == b"B" and read_file(ops, a) == b"A" * 50
