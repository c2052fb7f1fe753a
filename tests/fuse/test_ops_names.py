"""UnionOperations, not mounted: the handlers that add, remove and move names (mkdir,
mknod, symlink, create, link, unlink, rmdir, rename), and how the inode table follows."""

from __future__ import annotations

import errno
import os
import stat

import pyfuse3
import pytest
from layers import WHITEOUT_CHR, File, Symlink

from unionfs.fuse.ops import UnionOperations
from unionfs.union import create

from .conftest import MakeOps
from .driver import CTX, ROOT, call, fuse_errno, lookup_ino, opendir, read_file, readdir, upper_tree


def names_of(ops: UnionOperations, ino: int, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    fh = opendir(ops, ino)
    try:
        return sorted(readdir(ops, monkeypatch, fh).names)
    finally:
        call(ops.releasedir, fh)


# -- creating ------------------------------------------------------------------------------


def test_mkdir_in_a_lower_directory_copies_it_up_and_its_node_follows(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops({"d/": {"x": ""}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    assert ops.inodes.get(d).res.top == 1
    made = call(ops.mkdir, d, b"new", 0o750, CTX)
    assert stat.S_ISDIR(made.st_mode) and made.st_mode & 0o777 == 0o750
    assert upper_tree(ops) == {"d/": {"new/": {}}}
    assert ops.inodes.get(d).res.layers == (0, 1)  # union reported d copied up
    assert lookup_ino(ops, d, b"new") == made.node_id
    assert names_of(ops, d, monkeypatch) == [b".", b"..", b"new", b"x"]


def test_mkdir_deep_down_brings_every_ancestor_node_up(make_ops: MakeOps) -> None:
    ops = make_ops({"a/b/c/": {}}, upper={})
    a = lookup_ino(ops, ROOT, b"a")
    b = lookup_ino(ops, a, b"b")
    c = lookup_ino(ops, b, b"c")
    call(ops.mkdir, c, b"new", 0o755, CTX)
    for ino in (a, b, c):
        assert ops.inodes.get(ino).res.top == 0
    assert upper_tree(ops) == {"a/": {"b/": {"c/": {"new/": {}}}}}


def test_a_failed_change_still_leaves_the_nodes_of_what_it_copied_up(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent is copied up before the new entry fails (a full disk): its node must
    find its upper half, or what is made there later would not be seen through it."""
    ops = make_ops({"d/": {"x": ""}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")

    def full(layer: object, path: bytes, mode: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(create, "make_dir", full)
    assert fuse_errno(ops.mkdir, d, b"new", 0o755, CTX) == errno.ENOSPC
    assert upper_tree(ops) == {"d/": {}}
    assert ops.inodes.get(d).res.top == 0
    monkeypatch.undo()
    call(ops.mkdir, d, b"new", 0o755, CTX)
    assert lookup_ino(ops, d, b"new") > ROOT


def test_mkdir_of_an_existing_name_is_eexist_and_copies_nothing(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"x": ""}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    assert fuse_errno(ops.mkdir, d, b"x", 0o755, CTX) == errno.EEXIST
    assert upper_tree(ops) == {}


def test_create_answers_an_open_handle_of_the_new_file(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    info, attrs = call(ops.create, d, b"f", stat.S_IFREG | 0o640, os.O_WRONLY, CTX)
    assert attrs.st_mode & 0o777 == 0o640 and attrs.st_size == 0
    assert call(ops.write, info.fh, 0, b"hello") == 5
    call(ops.fsync, info.fh, True)
    call(ops.release, info.fh)
    assert lookup_ino(ops, d, b"f") == attrs.node_id
    assert read_file(ops, attrs.node_id) == b"hello"
    assert upper_tree(ops) == {"d/": {"f": "hello"}}


def test_create_over_a_whiteout_shows_only_the_new_file(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "old"}, upper={"f": WHITEOUT_CHR})
    assert call(ops.lookup, ROOT, b"f", CTX).st_ino == 0
    info, attrs = call(ops.create, ROOT, b"f", stat.S_IFREG | 0o644, os.O_RDWR, CTX)
    call(ops.release, info.fh)
    assert read_file(ops, attrs.node_id) == b""
    assert upper_tree(ops) == {"f": ""}


def test_symlink_makes_a_link_to_its_target_unresolved(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    attrs = call(ops.symlink, d, b"s", b"../nowhere", CTX)
    assert stat.S_ISLNK(attrs.st_mode)
    assert call(ops.readlink, attrs.node_id, CTX) == b"../nowhere"
    assert upper_tree(ops) == {"d/": {"s": Symlink("../nowhere")}}


def test_mknod_makes_a_fifo_and_refuses_a_whiteouts_form(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={})
    attrs = call(ops.mknod, ROOT, b"p", stat.S_IFIFO | 0o600, 0, CTX)
    assert stat.S_ISFIFO(attrs.st_mode)
    assert fuse_errno(ops.mknod, ROOT, b"w", stat.S_IFCHR | 0o600, 0, CTX) == errno.EPERM
    assert call(ops.lookup, ROOT, b"w", CTX).st_ino == 0


def test_link_of_a_lower_file_gives_one_inode_two_names(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "data", "d/": {}}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    d = lookup_ino(ops, ROOT, b"d")
    attrs = call(ops.link, f, d, b"g", CTX)
    assert attrs.node_id == f and attrs.st_nlink == 2
    assert lookup_ino(ops, d, b"g") == f
    assert call(ops.getattr, f, CTX).st_nlink == 2
    assert ops.inodes.get(f).names == {b"f", b"d/g"}
    assert upper_tree(ops) == {"f": "data", "d/": {"g": "data"}}


def test_link_of_a_directory_is_eperm(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    assert fuse_errno(ops.link, d, ROOT, b"e", CTX) == errno.EPERM


def test_writes_on_a_read_only_stack_are_erofs(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"f": ""}})
    d = lookup_ino(ops, ROOT, b"d")
    f = lookup_ino(ops, d, b"f")
    assert fuse_errno(ops.mkdir, d, b"n", 0o755, CTX) == errno.EROFS
    assert fuse_errno(ops.unlink, d, b"f", CTX) == errno.EROFS
    assert fuse_errno(ops.rename, d, b"f", d, b"g", 0, CTX) == errno.EROFS
    assert fuse_errno(ops.link, f, d, b"g", CTX) == errno.EROFS


# -- removing ------------------------------------------------------------------------------


def test_unlink_of_a_lower_file_whites_it_out_and_unlinks_its_node(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"f": "x", "g": ""}}, upper={})
    d = lookup_ino(ops, ROOT, b"d")
    f = lookup_ino(ops, d, b"f")
    call(ops.unlink, d, b"f", CTX)
    assert call(ops.lookup, d, b"f", CTX).st_ino == 0
    assert ops.inodes.get(f).unlinked
    assert ops.inodes.get(d).res.top == 0
    assert upper_tree(ops) == {"d/": {"f": WHITEOUT_CHR}}


def test_an_unlinked_upper_file_stays_readable_while_open(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"f": "kept"})
    f = lookup_ino(ops, ROOT, b"f")
    fh = call(ops.open, f, os.O_RDONLY, CTX).fh
    call(ops.unlink, ROOT, b"f", CTX)
    assert call(ops.read, fh, 0, 10) == b"kept"
    assert call(ops.getattr, f, CTX).st_nlink == 0
    call(ops.release, fh)
    assert upper_tree(ops) == {}


def test_unlink_of_a_directory_is_eisdir_and_rmdir_of_a_file_enotdir(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {}, "f": ""}, upper={})
    assert fuse_errno(ops.unlink, ROOT, b"d", CTX) == errno.EISDIR
    assert fuse_errno(ops.rmdir, ROOT, b"f", CTX) == errno.ENOTDIR
    assert upper_tree(ops) == {}


def test_rmdir_of_a_merged_directory_that_shows_nothing(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"x": ""}}, upper={"d/": {"x": WHITEOUT_CHR}})
    d = lookup_ino(ops, ROOT, b"d")
    call(ops.rmdir, ROOT, b"d", CTX)
    assert ops.inodes.get(d).unlinked
    assert call(ops.lookup, ROOT, b"d", CTX).st_ino == 0
    assert upper_tree(ops) == {"d": WHITEOUT_CHR}


def test_rmdir_of_a_directory_that_shows_something_is_enotempty(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"x": ""}}, upper={})
    assert fuse_errno(ops.rmdir, ROOT, b"d", CTX) == errno.ENOTEMPTY
    assert upper_tree(ops) == {}


# -- renaming ------------------------------------------------------------------------------


def test_rename_moves_the_node_and_every_node_below(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"d/": {"s/": {"f": "x"}}})
    d = lookup_ino(ops, ROOT, b"d")
    s = lookup_ino(ops, d, b"s")
    f = lookup_ino(ops, s, b"f")
    call(ops.rename, ROOT, b"d", ROOT, b"e", 0, CTX)
    assert ops.inodes.get(f).res.path == b"e/s/f"
    assert lookup_ino(ops, ROOT, b"e") == d
    assert lookup_ino(ops, d, b"s") == s and lookup_ino(ops, s, b"f") == f
    assert call(ops.lookup, ROOT, b"d", CTX).st_ino == 0


def test_rename_of_a_lower_file_copies_both_parents_up(make_ops: MakeOps) -> None:
    ops = make_ops({"a/": {"f": "x"}, "b/": {}}, upper={})
    a = lookup_ino(ops, ROOT, b"a")
    b = lookup_ino(ops, ROOT, b"b")
    f = lookup_ino(ops, a, b"f")
    call(ops.rename, a, b"f", b, b"g", 0, CTX)
    assert ops.inodes.get(a).res.top == 0 and ops.inodes.get(b).res.top == 0
    assert lookup_ino(ops, b, b"g") == f  # a copy keeps the number it showed
    assert ops.inodes.get(f).res.path == b"b/g"
    assert upper_tree(ops) == {"a/": {"f": WHITEOUT_CHR}, "b/": {"g": "x"}}


def test_rename_over_an_entry_leaves_its_node_unlinked(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"a": "new", "b": "old"})
    a = lookup_ino(ops, ROOT, b"a")
    b = lookup_ino(ops, ROOT, b"b")
    call(ops.rename, ROOT, b"a", ROOT, b"b", 0, CTX)
    assert ops.inodes.get(b).unlinked
    assert lookup_ino(ops, ROOT, b"b") == a


def test_rename_exchange_swaps_the_nodes(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"a/": {"x": ""}, "b": "file"})
    a = lookup_ino(ops, ROOT, b"a")
    b = lookup_ino(ops, ROOT, b"b")
    call(ops.rename, ROOT, b"a", ROOT, b"b", pyfuse3.RENAME_EXCHANGE, CTX)
    assert lookup_ino(ops, ROOT, b"a") == b and lookup_ino(ops, ROOT, b"b") == a
    assert ops.inodes.get(a).res.path == b"b" and ops.inodes.get(b).res.path == b"a"


def test_rename_of_a_merged_directory_without_redirects_is_exdev(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"x": ""}}, {"d/": {"y": ""}}, upper={})
    assert fuse_errno(ops.rename, ROOT, b"d", ROOT, b"e", 0, CTX) == errno.EXDEV


def test_rename_noreplace_onto_an_existing_name_is_eexist(make_ops: MakeOps) -> None:
    ops = make_ops({"a": File("1"), "b": File("2")}, upper={})
    noreplace = pyfuse3.RENAME_NOREPLACE
    assert fuse_errno(ops.rename, ROOT, b"a", ROOT, b"b", noreplace, CTX) == errno.EEXIST
    assert upper_tree(ops) == {}
