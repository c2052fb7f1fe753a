"""UnionOperations, not mounted: a listing read in several READDIRPLUS requests while names
and link counts change between them (issue 19.9).

The kernel applies the attributes of every entry of a READDIRPLUS reply to its cached
inode unless that inode changed after the request *started* (``fuse_direntplus_link``,
``attr_version``). So a continuation must describe each entry as it is when it is answered,
not as it was when the listing began: a link count from before a ``link`` becomes the
kernel's count, and the next ``unlink`` takes it to 0 (``link`` then fails with ENOENT).
A name removed since must not come back with a node (the kernel would cache a dentry for
it, and the daemon's node would take that name again).
"""

from __future__ import annotations

import stat

import pytest

from unionfs.fuse.ops import UnionOperations

from .conftest import MakeOps
from .driver import CTX, ROOT, Readdir, call, lookup_ino, lookups, opendir, readdir

NAMES = [f"f{i}".encode() for i in range(6)]
DIR = {"d/": {name.decode(): name.decode() for name in NAMES}, "e/": {}}


def _layers(where: str) -> tuple[tuple[dict[str, object], ...], dict[str, object]]:
    """(lowers, upper): the directory ``d`` only in a lower (as in pjdfstest's run of
    issue 19), or only in the upper."""
    return ((DIR,), {}) if where == "lower" else ((), DIR)


def _begun(make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch, where: str) -> tuple[
    UnionOperations, int, int, Readdir, list[bytes]
]:  # fmt: skip
    """A listing of ``d`` begun: one request answered ``.``, ``..`` and one entry. Returns
    (ops, d, its handle, that first reply, the names still to come)."""
    lowers, upper = _layers(where)
    ops = make_ops(*lowers, upper=upper)
    d = lookup_ino(ops, ROOT, b"d")
    fh = opendir(ops, d)
    head = readdir(ops, monkeypatch, fh, room=3)
    assert head.names[:2] == [b".", b".."] and len(head.accepted) == 3
    return ops, d, fh, head, [n for n in NAMES if n not in head.names]


def _rest(ops: UnionOperations, monkeypatch: pytest.MonkeyPatch, fh: int, head: Readdir) -> Readdir:
    return readdir(ops, monkeypatch, fh, head.accepted[-1].next_id)


@pytest.mark.parametrize("where", ["lower", "upper"])
def test_a_continued_listing_shows_the_link_count_of_now(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    ops, d, fh, head, rest = _begun(make_ops, monkeypatch, where)
    victim = rest[0]
    v = lookup_ino(ops, d, victim)
    e = lookup_ino(ops, ROOT, b"e")
    assert call(ops.link, v, e, b"w", CTX).st_nlink == 2
    _forget(ops, v, e)  # the kernel evicts it (and the new name's dentry)
    tail = _rest(ops, monkeypatch, fh, head)
    listed = {x.name: x.attrs for x in tail.accepted}
    assert listed[victim].node_id not in (0, v)
    assert listed[victim].st_nlink == 2  # the listing began when it was 1


@pytest.mark.parametrize("where", ["lower", "upper"])
def test_a_continued_listing_leaves_out_a_name_removed_since(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    ops, d, fh, head, rest = _begun(make_ops, monkeypatch, where)
    victim = rest[0]
    v = lookup_ino(ops, d, victim)
    call(ops.unlink, d, victim, CTX)
    tail = _rest(ops, monkeypatch, fh, head)
    assert victim not in tail.names
    assert sorted(head.names[2:] + tail.names) == sorted(set(NAMES) - {victim})
    node = ops.inodes.get(v)
    assert node.unlinked and lookups(ops, v) == 1


@pytest.mark.parametrize("where", ["lower", "upper"])
def test_a_continued_listing_shows_what_a_name_names_now(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A name renamed over since the listing began is the moved file, with its node."""
    ops, d, fh, head, rest = _begun(make_ops, monkeypatch, where)
    victim, mover = rest[0], rest[1]
    v = lookup_ino(ops, d, victim)
    m = lookup_ino(ops, d, mover)
    call(ops.rename, d, mover, d, victim, 0, CTX)
    number = call(ops.getattr, m, CTX).st_ino
    _forget(ops, v, m)  # evicted: the listing gives the kernel its node anew
    tail = _rest(ops, monkeypatch, fh, head)
    listed = {x.name: x.attrs for x in tail.accepted}
    assert mover not in listed
    assert listed[victim].st_ino == number
    node = ops.inodes.get(listed[victim].node_id)
    assert node.res.path == b"d/" + victim and node.number == number


def test_a_continued_listing_gives_only_the_name_of_an_inode_the_kernel_holds(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node id 0: the kernel leaves the inode's attributes alone (see ``readdir``)."""
    ops, d, fh, head, rest = _begun(make_ops, monkeypatch, "upper")
    victim = rest[0]
    v = lookup_ino(ops, d, victim)
    call(ops.link, v, lookup_ino(ops, ROOT, b"e"), b"w", CTX)
    tail = _rest(ops, monkeypatch, fh, head)
    listed = {x.name: x.attrs for x in tail.accepted}
    assert listed[victim].node_id == 0
    assert listed[victim].st_ino == call(ops.getattr, v, CTX).st_ino  # its d_ino
    assert lookups(ops, v) == 2  # the lookup and the link, none for the listing


def _forget(ops: UnionOperations, *inodes: int) -> None:
    """The kernel forgets *inodes* (every reference it has)."""
    call(ops.forget, [(ino, lookups(ops, ino)) for ino in inodes])
    assert all(ops.inodes.find(ino) is None for ino in inodes)


def test_a_continued_listing_with_nothing_changed_serves_its_snapshot(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lookup per entry when nothing changed since the listing began (the common case:
    a listing costs one merge)."""
    ops, _, fh, head, rest = _begun(make_ops, monkeypatch, "upper")
    monkeypatch.setattr("unionfs.fuse.reading.lookup", _no_lookup)
    tail = _rest(ops, monkeypatch, fh, head)
    assert sorted(tail.names) == rest


def _no_lookup(*args: object) -> None:
    raise AssertionError("looked up an entry of an unchanged listing")


def test_a_continued_listing_of_a_removed_directory_lists_nothing_of_its_namesake(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its path names another directory by now: the old listing ends."""
    ops, d, fh, head, _ = _begun(make_ops, monkeypatch, "upper")
    for name in NAMES:
        call(ops.unlink, d, name, CTX)
    call(ops.rmdir, ROOT, b"d", CTX)
    again = call(ops.mkdir, ROOT, b"d", 0o755, CTX).node_id
    for name in NAMES:
        call(ops.mknod, again, name, stat.S_IFREG | 0o644, 0, CTX)
    assert _rest(ops, monkeypatch, fh, head).names == []
