"""UnionOperations, not mounted: opendir/readdir (READDIRPLUS) with a fake reply buffer."""

from __future__ import annotations

import errno
import stat

import pytest
from layers import WHITEOUT_CHR, Opaque

from .conftest import MakeOps
from .driver import CTX, ROOT, call, fuse_errno, lookup_ino, lookups, opendir, readdir

SPEC = {"d/": {"a": "", "b": "", "c": "", "sub/": {}}}
LOWER = {"d/": {"e": "", "f": "", "a": "lower a"}}


def test_readdir_lists_dot_dot_dot_then_the_merged_entries(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops(SPEC, LOWER)
    d = lookup_ino(ops, ROOT, b"d")
    fh = opendir(ops, d)
    got = readdir(ops, monkeypatch, fh)
    assert got.names[:2] == [b".", b".."]
    assert sorted(got.names[2:]) == [b"a", b"b", b"c", b"e", b"f", b"sub"]
    assert [e.next_id for e in got.accepted] == list(range(1, len(got.accepted) + 1))
    assert got.accepted[0].attrs.node_id == d
    assert got.accepted[1].attrs.node_id == ROOT


def test_readdir_hides_whiteouts_and_markers(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops(
        {"a": WHITEOUT_CHR, ".wh.b": "", "o/": Opaque({}, form="marker")},
        {"a": "", "b": "", "c": ""},
    )
    fh = opendir(ops, ROOT)
    assert sorted(readdir(ops, monkeypatch, fh).names) == [b".", b"..", b"c", b"o"]


def test_readdir_attributes_agree_with_lookup(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops(SPEC, LOWER)
    d = lookup_ino(ops, ROOT, b"d")
    got = readdir(ops, monkeypatch, opendir(ops, d))
    for e in got.accepted[2:]:
        attrs = call(ops.lookup, d, e.name, CTX)
        assert (e.attrs.st_ino, e.attrs.st_mode, e.attrs.st_size) == (
            attrs.st_ino,
            attrs.st_mode,
            attrs.st_size,
        ), e.name
        assert e.attrs.entry_timeout > 0


def test_readdir_resumes_at_the_offset_of_the_last_accepted_entry(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops(SPEC, LOWER)
    d = lookup_ino(ops, ROOT, b"d")
    whole = readdir(ops, monkeypatch, opendir(ops, d)).names
    for room in (1, 2, 3, 4):
        fh = opendir(ops, d)
        seen: list[bytes] = []
        offset = 0
        for _ in range(20):
            got = readdir(ops, monkeypatch, fh, offset, room)
            if not got.accepted:
                break
            seen += got.names
            offset = got.accepted[-1].next_id
        assert seen == whole, room


def test_readdir_past_the_end_lists_nothing(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops({"a": "", "b": ""})
    fh = opendir(ops, ROOT)
    last = readdir(ops, monkeypatch, fh).accepted[-1].next_id
    assert readdir(ops, monkeypatch, fh, last).accepted == []
    assert readdir(ops, monkeypatch, fh, last + 5).accepted == []


def test_readdir_counts_a_lookup_only_for_accepted_entries(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops({"a": "", "b": "", "c": ""})
    fh = opendir(ops, ROOT)
    got = readdir(ops, monkeypatch, fh, room=3)
    assert got.names[:2] == [b".", b".."]
    (first,) = got.accepted[2:]
    assert lookups(ops, first.attrs.node_id) == 1
    assert got.refused, "the buffer was offered more than it took"
    for refused in got.refused:
        assert lookups(ops, refused.attrs.node_id) == 0, refused.name
    assert len(ops.inodes) == 2  # the root and the one accepted entry


def test_readdir_takes_no_reference_for_dot_or_dot_dot(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops({"d/": {"x": ""}})
    d = lookup_ino(ops, ROOT, b"d")
    fh = opendir(ops, d)
    got = readdir(ops, monkeypatch, fh)
    assert got.names == [b".", b"..", b"x"]
    assert lookups(ops, d) == 1
    assert lookups(ops, ROOT) == 1
    assert lookups(ops, got.accepted[2].attrs.node_id) == 1


def test_readdir_again_gives_only_the_names_of_inodes_the_kernel_holds(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node id 0: no attributes, no reference (issue 19.9: attributes applied between our
    answer to an unlink and the kernel's own drop of the link count count it twice)."""
    ops = make_ops({"a": "", "b": ""})
    fh = opendir(ops, ROOT)
    first = readdir(ops, monkeypatch, fh)
    again = readdir(ops, monkeypatch, fh)
    assert again.names == first.names
    for e, f in zip(again.accepted[2:], first.accepted[2:], strict=True):
        assert e.attrs.node_id == 0 and e.attrs.st_ino == f.attrs.st_ino  # d_ino stays
        assert lookups(ops, f.attrs.node_id) == 1


@pytest.mark.parametrize("separate_ids", [True, False])
def test_readdir_entry_keeps_its_inode_number_after_forget(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch, separate_ids: bool
) -> None:
    """Its ``st_ino`` stays; its node id is a new one (the number itself, without separate
    ids: the kernel forgot it)."""
    ops = make_ops({"a": ""}, separate_ids=separate_ids)
    fh = opendir(ops, ROOT)
    listed = readdir(ops, monkeypatch, fh).accepted[2].attrs
    ino, number = listed.node_id, listed.st_ino
    call(ops.forget, [(ino, 1)])
    assert ops.inodes.find(ino) is None
    again = call(ops.lookup, ROOT, b"a", CTX)
    assert again.st_ino == number
    assert (again.node_id == ino) == (not separate_ids)


def test_readdir_continues_its_snapshot_and_refreshes_at_offset_zero(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops({"a": "", "b": ""}, upper={})
    fh = opendir(ops, ROOT)
    head = readdir(ops, monkeypatch, fh, room=3)
    call(ops.mknod, ROOT, b"new", stat.S_IFIFO | 0o644, 0, CTX)
    rest = readdir(ops, monkeypatch, fh, head.accepted[-1].next_id)
    assert b"new" not in head.names + rest.names
    assert sorted(head.names + rest.names) == [b".", b"..", b"a", b"b"]
    assert b"new" in readdir(ops, monkeypatch, fh).names


def test_opendir_of_a_file_is_enotdir(make_ops: MakeOps) -> None:
    ops = make_ops({"f": ""})
    f = lookup_ino(ops, ROOT, b"f")
    assert fuse_errno(ops.opendir, f, CTX) == errno.ENOTDIR


def test_readdir_of_a_released_handle_is_ebadf(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = make_ops({"a": ""})
    fh = opendir(ops, ROOT)
    call(ops.releasedir, fh)
    monkeypatch.setattr("pyfuse3.readdir_reply", lambda *args: True)
    assert fuse_errno(ops.readdir, fh, 0, object()) == errno.EBADF
