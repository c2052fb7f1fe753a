"""UnionOperations, not mounted: lookup, getattr, inode numbers and the kernel's references."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from layers import WHITEOUT_CHR, Hardlink, Symlink

from unionfs.fuse import entry
from unionfs.fuse.inodes import FALLBACK

from .conftest import MakeOps
from .driver import CTX, ROOT, call, fuse_errno, lookup_ino, lookups, setattr_request


def test_lookup_answers_the_attributes_of_the_top_entry(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "upper!"}, {"a": "lower"})
    attrs = call(ops.lookup, ROOT, b"a", CTX)
    assert attrs.st_ino > ROOT
    assert attrs.st_size == 6
    assert stat.S_ISREG(attrs.st_mode)
    assert attrs.entry_timeout > 0 and attrs.attr_timeout > 0


def test_lookup_of_missing_name_is_a_cacheable_negative_entry(make_ops: MakeOps) -> None:
    ops = make_ops({"a": ""})
    attrs = call(ops.lookup, ROOT, b"missing", CTX)
    assert attrs.st_ino == 0
    assert attrs.entry_timeout > 0
    assert len(ops.inodes) == 1  # only the root: a negative entry holds no inode


def test_lookup_of_whited_out_name_is_a_negative_entry(make_ops: MakeOps) -> None:
    ops = make_ops({"a": WHITEOUT_CHR, ".wh.b": ""}, {"a": "", "b": ""})
    assert call(ops.lookup, ROOT, b"a", CTX).st_ino == 0
    assert call(ops.lookup, ROOT, b"b", CTX).st_ino == 0
    assert call(ops.lookup, ROOT, b".wh.b", CTX).st_ino == 0


def test_negative_entry_has_no_inode_and_a_timeout() -> None:
    attrs = entry.negative()
    assert attrs.st_ino == 0 and attrs.entry_timeout > 0


def test_each_lookup_takes_one_reference(make_ops: MakeOps) -> None:
    ops = make_ops({"a": ""})
    ino = lookup_ino(ops, ROOT, b"a")
    assert lookups(ops, ino) == 1
    assert lookup_ino(ops, ROOT, b"a") == ino
    assert lookups(ops, ino) == 2
    call(ops.forget, [(ino, 1)])
    assert lookups(ops, ino) == 1
    call(ops.forget, [(ino, 1)])
    assert ops.inodes.find(ino) is None


@pytest.mark.parametrize("separate_ids", [True, False])
def test_inode_number_is_stable_across_forget_and_lookup_again(
    make_ops: MakeOps, separate_ids: bool
) -> None:
    """``st_ino`` stays; a node id the kernel forgot is never given out again (without
    separate ids the number is the id, and a forgotten one may come back)."""
    ops = make_ops({"a": "", "d/": {"f": ""}}, {"d/": {"g": ""}}, separate_ids=separate_ids)
    d = call(ops.lookup, ROOT, b"d", CTX)
    a = call(ops.lookup, ROOT, b"a", CTX)
    f = call(ops.lookup, d.node_id, b"f", CTX)
    call(ops.forget, [(a.node_id, 1), (f.node_id, 1), (d.node_id, 1)])
    assert len(ops.inodes) == 1
    d_again = call(ops.lookup, ROOT, b"d", CTX)
    a_again = call(ops.lookup, ROOT, b"a", CTX)
    f_again = call(ops.lookup, d_again.node_id, b"f", CTX)
    pairs = [(d, d_again), (a, a_again), (f, f_again)]
    assert [x.st_ino for x, _ in pairs] == [y.st_ino for _, y in pairs]
    reused = {x.node_id for x, _ in pairs} & {y.node_id for _, y in pairs}
    assert reused == (set() if separate_ids else {d.node_id, a.node_id, f.node_id})


@pytest.mark.parametrize("separate_ids", [True, False])
def test_an_entry_shows_its_own_inode_number_and_lower_hard_links_are_apart(
    make_ops: MakeOps, separate_ids: bool
) -> None:
    """As kernel overlayfs with its layers on one filesystem: a lower file's own number.
    Two names of a lower hard link are two overlay inodes on a writable stack (copy-up
    separates them). With separate ids both show the lower file's number and link count,
    as the kernel's do (issue 18); without, the second gets a number of this mount only."""
    ops = make_ops(
        {"a": "", "h1": "linked", "h2": Hardlink("h1")}, upper={}, separate_ids=separate_ids
    )
    lower = ops.stack.layers[1]
    a = call(ops.lookup, ROOT, b"a", CTX).st_ino
    st = lower.lstat(b"a")
    assert st is not None and a == st.st_ino
    h1, h2 = call(ops.lookup, ROOT, b"h1", CTX), call(ops.lookup, ROOT, b"h2", CTX)
    assert h1.node_id != h2.node_id
    if separate_ids:
        shared = lower.lstat(b"h1")
        assert shared is not None
        assert (h1.st_ino, h1.st_nlink) == (h2.st_ino, h2.st_nlink) == (shared.st_ino, 2)
        # Copy-up breaks the link: the copy shows its own number, never the other name's.
        request = setattr_request(mode=stat.S_IFREG | 0o600)
        copied = call(ops.setattr, h1.node_id, *request, None, CTX)
        assert copied.st_ino != shared.st_ino and copied.st_nlink == 1
        assert call(ops.getattr, h2.node_id, CTX).st_ino == shared.st_ino
    else:
        assert FALLBACK in (h1.st_ino & FALLBACK, h2.st_ino & FALLBACK)


def test_different_entries_get_different_inode_numbers(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "same", "d/": {"a": "same"}}, {"b": "same"})
    d = lookup_ino(ops, ROOT, b"d")
    numbers = [lookup_ino(ops, ROOT, b"a"), lookup_ino(ops, ROOT, b"b"), lookup_ino(ops, d, b"a")]
    assert len({*numbers, d, ROOT}) == 5


def test_hard_links_in_a_layer_share_one_inode_number(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "data", "d/h": Hardlink("a")})
    d = lookup_ino(ops, ROOT, b"d")
    first = call(ops.lookup, ROOT, b"a", CTX)
    second = call(ops.lookup, d, b"h", CTX)
    assert (first.st_ino, first.node_id) == (second.st_ino, second.node_id)
    assert first.st_nlink == second.st_nlink == 2
    assert lookups(ops, first.node_id) == 2


def test_lookup_of_dot_and_dot_dot(make_ops: MakeOps) -> None:
    ops = make_ops({"d/e/": {}})
    d = lookup_ino(ops, ROOT, b"d")
    e = lookup_ino(ops, d, b"e")
    assert lookup_ino(ops, e, b".") == e
    assert lookup_ino(ops, e, b"..") == d
    assert lookup_ino(ops, d, b"..") == ROOT
    assert lookup_ino(ops, ROOT, b"..") == ROOT
    assert lookups(ops, e) == 2  # "." is a lookup the kernel will forget like any other


def test_lookup_in_a_file_is_enotdir(make_ops: MakeOps) -> None:
    ops = make_ops({"f": ""})
    f = lookup_ino(ops, ROOT, b"f")
    assert fuse_errno(ops.lookup, f, b"x", CTX) == errno.ENOTDIR


def test_lookup_in_an_unknown_inode_is_estale(make_ops: MakeOps) -> None:
    ops = make_ops({"a": ""})
    assert fuse_errno(ops.lookup, 12345, b"a", CTX) == errno.ESTALE
    assert fuse_errno(ops.getattr, 12345, CTX) == errno.ESTALE


def test_lookup_of_a_name_over_255_bytes_is_enametoolong(make_ops: MakeOps) -> None:
    ops = make_ops({"a": ""})
    assert fuse_errno(ops.lookup, ROOT, b"n" * 256, CTX) == errno.ENAMETOOLONG


def test_getattr_of_merged_directory_reports_one_link(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"x/": {}}}, {"d/": {"y/": {}, "z/": {}}})
    d = lookup_ino(ops, ROOT, b"d")
    assert call(ops.getattr, d, CTX).st_nlink == 1
    assert call(ops.lookup, ROOT, b"d", CTX).st_nlink == 1
    assert call(ops.getattr, ROOT, CTX).st_nlink == 1


def test_getattr_of_unmerged_directory_reports_its_own_links(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {"x/": {}, "y/": {}}}, {"other": ""})
    d = lookup_ino(ops, ROOT, b"d")
    assert call(ops.getattr, d, CTX).st_nlink == 4


def test_getattr_answers_the_top_entry(make_ops: MakeOps) -> None:
    ops = make_ops({"s": Symlink("target")}, {"s": "a lower file"})
    s = lookup_ino(ops, ROOT, b"s")
    attrs = call(ops.getattr, s, CTX)
    assert stat.S_ISLNK(attrs.st_mode)
    assert attrs.node_id == s
    assert call(ops.readlink, s, CTX) == b"target"


def test_getattr_of_root_is_the_top_layer_root(make_ops: MakeOps) -> None:
    ops = make_ops({"a": ""}, {"b": ""})
    attrs = call(ops.getattr, ROOT, CTX)
    assert stat.S_ISDIR(attrs.st_mode)
    assert attrs.st_ino == ROOT
    top = ops.stack.layers[0].lstat(b"")
    assert top is not None and attrs.st_mtime_ns == top.st_mtime_ns


def test_getattr_copies_times_and_owner_from_the_layer(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "x"})
    ino = lookup_ino(ops, ROOT, b"a")
    st = os.lstat(os.path.join(ops.stack.layers[0].root, "a"))
    attrs = call(ops.getattr, ino, CTX)
    assert (attrs.st_uid, attrs.st_gid, attrs.st_mode) == (st.st_uid, st.st_gid, st.st_mode)
    assert (attrs.st_mtime_ns, attrs.st_ctime_ns) == (st.st_mtime_ns, st.st_ctime_ns)


def test_forget_never_raises(make_ops: MakeOps) -> None:
    ops = make_ops({"a": ""})
    ino = lookup_ino(ops, ROOT, b"a")
    call(ops.forget, [(98765, 1)])  # never looked up
    call(ops.forget, [(ino, 10)])  # more than it holds
    call(ops.forget, [(ino, 1)])  # already gone
    call(ops.forget, [(ROOT, 1000)])  # the root stays
    call(ops.forget, None)  # not even a list
    assert ops.inodes.find(ino) is None
    assert ops.inodes.find(ROOT) is not None
    assert call(ops.getattr, ROOT, CTX).st_ino == ROOT
