"""Never a stale view: a layer directory changed between two opens is indexed again.

Each case builds the index of a two-layer stack, changes one layer directly on disk, and
opens the same stack again with fresh layer objects (as a new mount would). The second
open must rescan the changed layer (and only it), and the view must show the change and
agree with the rules (``verify`` empty, ``compare`` empty). A sealed layer is trusted as it
is: no fingerprint, no scan.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from layers import File, Opaque
from layers import build as make_layer

from unionfs.index import build, mounting, prune, verify
from unionfs.index.views import IndexedLowers

from .indexutil import Calls, compare, layer_key, opened, real, tables_in_use, tables_on_disk

TOP = {
    "a": "aaaa",
    "d/": {"f": "ffff", "g": "gggg", "deep/er/": {"file": "12345678"}},
    "x": File("x", xattrs={"user.old": "1"}),
    "o/": {"top": "t"},
}
BOTTOM = {"a": "lower", "d/": {"h": "hhhh"}, "w": "hidden later", "o/": {"bottom": "b"}}


@dataclass(frozen=True)
class Change:
    """A change to one layer (0: top, 1: bottom) and what the view must show after it."""

    layer: int
    apply: Callable[[Path, Path], None]  # (layer directory, a scratch dir outside the layers)
    shows: Callable[[IndexedLowers], bool]


def _rewrite_same_size(root: Path, _: Path) -> None:
    path = root / "a"
    with open(path, "r+b") as f:
        f.write(b"bbbb")


def _rewrite_same_size_keep_mtime(root: Path, _: Path) -> None:
    path = root / "d/deep/er/file"
    before = os.lstat(path)
    with open(path, "r+b") as f:
        f.write(b"87654321")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as tar -x or rsync -t do


def _rewritten(path: bytes, content: bytes) -> Callable[[IndexedLowers], bool]:
    """The file now holds *content*, and the view has the times the rewrite gave it."""

    def shows(view: IndexedLowers) -> bool:
        st = view.lstat(path)
        on_disk = os.path.join(os.fsencode(view.layer_of(path).root), path)
        disk = os.lstat(on_disk)
        with open(on_disk, "rb") as f:
            if f.read() != content:
                return False
        times = (disk.st_ctime_ns, disk.st_mtime_ns)
        return st is not None and (st.st_ctime_ns, st.st_mtime_ns) == times

    return shows


def _lstat_is(path: bytes, test: Callable[[os.stat_result], bool]) -> Callable[..., bool]:
    return lambda view: (st := view.lstat(path)) is not None and test(st)


def _lists(path: bytes, names: set[bytes]) -> Callable[[IndexedLowers], bool]:
    return lambda view: set(dict(view.scandir(path))) == names


def _gone(path: bytes) -> Callable[[IndexedLowers], bool]:
    return lambda view: view.lstat(path) is None


CHANGES = {
    "content rewritten in place, same size": Change(
        0, _rewrite_same_size, _rewritten(b"a", b"bbbb")
    ),
    "content rewritten, same size, mtime put back": Change(
        0, _rewrite_same_size_keep_mtime, _rewritten(b"d/deep/er/file", b"87654321")
    ),
    "file added to a lower layer": Change(
        1,
        lambda r, _: (r / "d/new").write_text("n"),
        _lists(b"d", {b"deep", b"f", b"g", b"h", b"new"}),
    ),
    "file added deep in the top layer": Change(
        0,
        lambda r, _: (r / "d/deep/er/more").write_text("m"),
        _lists(b"d/deep/er", {b"file", b"more"}),
    ),
    "file removed": Change(0, lambda r, _: (r / "d/g").unlink(), _gone(b"d/g")),
    "file renamed": Change(
        0, lambda r, _: (r / "d/f").rename(r / "d/f2"), _lists(b"d", {b"deep", b"f2", b"g", b"h"})
    ),
    "directory renamed": Change(
        1, lambda r, _: (r / "o").rename(r / "o2"), _lists(b"o2", {b"bottom"})
    ),
    "file chmod'ed": Change(
        0,
        lambda r, _: os.chmod(r / "a", 0o600),
        _lstat_is(b"a", lambda st: st.st_mode & 0o777 == 0o600),
    ),
    "file chown'ed": Change(
        0, lambda r, _: os.chown(r / "a", 1234, 5678), _lstat_is(b"a", lambda st: st.st_uid == 1234)
    ),
    "layer root chmod'ed": Change(
        0, lambda r, _: os.chmod(r, 0o701), _lstat_is(b"", lambda st: st.st_mode & 0o777 == 0o701)
    ),
    "xattr added": Change(
        0,
        lambda r, _: os.setxattr(r / "x", "user.new", b"2"),
        lambda view: view.getxattr(b"x", b"user.new") == b"2",
    ),
    "xattr removed": Change(
        0,
        lambda r, _: os.removexattr(r / "x", "user.old"),
        lambda view: view.listxattr(b"x") == [],
    ),
    "whiteout device added": Change(
        0, lambda r, _: os.mknod(r / "w", stat.S_IFCHR, os.makedev(0, 0)), _gone(b"w")
    ),
    "whiteout file added": Change(0, lambda r, _: (r / ".wh.w").write_text(""), _gone(b"w")),
    "opaque xattr added": Change(
        0,
        lambda r, _: os.setxattr(r / "o", "trusted.overlay.opaque", b"y"),
        _lists(b"o", {b"top"}),
    ),
    "opaque marker added": Change(
        0, lambda r, _: (r / "o/.wh..wh..opq").write_text(""), _lists(b"o", {b"top"})
    ),
    "hard link made from outside the layer": Change(
        0,
        lambda r, outside: os.link(r / "a", outside / "extra-link"),
        _lstat_is(b"a", lambda st: st.st_nlink == 2),
    ),
    "file replaced by a directory": Change(
        0,
        lambda r, _: ((r / "a").unlink(), (r / "a").mkdir()),
        _lstat_is(b"a", lambda st: stat.S_ISDIR(st.st_mode)),
    ),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_layer_changed_between_opens_is_indexed_again(
    name: str, tmp_path: Path, indexdir: Path, calls: Calls
) -> None:
    change = CHANGES[name]
    dirs = [make_layer(tmp_path / "top", TOP), make_layer(tmp_path / "bottom", BOTTOM)]
    outside = tmp_path / "outside"
    outside.mkdir()
    with opened(indexdir, dirs) as first:
        assert not change.shows(first.view), "the change is not there yet"
    change.apply(dirs[change.layer], outside)
    calls.reset()
    with opened(indexdir, dirs) as second:
        assert verify.verify(second.view, second.layers) == []
        assert compare(second.view, second.layers) == []
        assert change.shows(second.view)
    assert calls.scanned == [real(dirs[change.layer])]


def test_a_reindexed_layer_invalidates_every_stack_built_on_it(
    tmp_path: Path, indexdir: Path, calls: Calls
) -> None:
    shared = make_layer(tmp_path / "shared", {"s": "1", "d/": {}})
    one = make_layer(tmp_path / "one", {"o": "1"})
    two = make_layer(tmp_path / "two", {"t": "1"})
    for stack in ([one, shared], [two, shared]):
        with opened(indexdir, stack):
            pass
    (shared / "d/added").write_text("new")
    with opened(indexdir, [one, shared]) as index:
        assert index.view.lstat(b"d/added") is not None
    calls.reset()
    with opened(indexdir, [two, shared]) as index:  # its stack table was built on the old one
        assert index.view.lstat(b"d/added") is not None
        assert verify.verify(index.view, index.layers) == []
    assert calls.scanned == []
    assert calls.merged == 1


def test_an_unchanged_layer_is_only_fingerprinted(
    tmp_path: Path, indexdir: Path, calls: Calls
) -> None:
    dirs = [make_layer(tmp_path / "top", TOP), make_layer(tmp_path / "bottom", BOTTOM)]
    with opened(indexdir, dirs):
        pass
    for path in (dirs[0] / "a", dirs[1] / "d/h"):
        with open(path, "rb") as f:  # reading changes atime only: not a change of the layer
            f.read()
    calls.reset()
    with opened(indexdir, dirs):
        pass
    assert calls.scanned == []
    assert sorted(calls.fingerprinted) == sorted(real(d) for d in dirs)


def test_a_sealed_layer_is_not_checked_again(tmp_path: Path, indexdir: Path, calls: Calls) -> None:
    dirs = [make_layer(tmp_path / "top", TOP), make_layer(tmp_path / "bottom", BOTTOM)]
    with opened(indexdir, dirs) as first:
        env = first.env
        key = layer_key(env, dirs[0])
        with env.write() as txn:
            record = env.get_record(txn, key)
            assert record is not None
            env.put_record(txn, key, {**record, "sealed": True})
    (dirs[0] / "added").write_text("not seen: sealed layers never change")
    calls.reset()
    with opened(indexdir, dirs) as second:
        assert second.view.lstat(b"added") is None
        assert second.view.lstat(b"a") is not None
    assert real(dirs[0]) not in calls.fingerprinted
    assert calls.scanned == []
    assert calls.fingerprinted == [real(dirs[1])]


def test_a_layer_rebuilt_at_the_same_path_is_indexed_again(tmp_path: Path, indexdir: Path) -> None:
    """The same path, a new directory (as an image layer extracted again)."""
    top = make_layer(tmp_path / "top", TOP)
    bottom = make_layer(tmp_path / "bottom", BOTTOM)
    with opened(indexdir, [top, bottom]):
        pass
    os.rename(top, tmp_path / "old-top")
    make_layer(tmp_path / "top", {"a": "replaced", "z": Opaque({"new": "n"})})
    with opened(indexdir, [top, bottom]) as index:
        assert verify.verify(index.view, index.layers) == []
        assert sorted(dict(index.view.scandir(b""))) == [b"a", b"d", b"o", b"w", b"z"]


def test_reindexing_and_rebuilding_leave_no_orphan_tables(tmp_path: Path, indexdir: Path) -> None:
    """Every table in the entries database belongs to a registry record, with as many
    entries as the record says, after layers change, stacks share them and rebuilds run."""
    top = make_layer(tmp_path / "top", TOP)
    bottom = make_layer(tmp_path / "bottom", BOTTOM)
    other = make_layer(tmp_path / "other", {"o": "o"})
    for round_ in range(3):
        for stack in ([top, bottom], [other, bottom], [bottom]):
            with opened(indexdir, stack):
                pass
        (bottom / f"added{round_}").write_text("x")
        (top / "d" / f"more{round_}").write_text("y")
    with opened(indexdir, [top, bottom]) as index:
        build.rebuild(index.env, index.layers)
        assert tables_on_disk(index.env) == tables_in_use(index.env)
        assert len(tables_in_use(index.env)) == 4  # 2 layers and their stack, and [bottom]


def test_a_sealed_mount_trusts_what_was_indexed_and_indexes_what_was_not(
    tmp_path: Path, indexdir: Path, calls: Calls
) -> None:
    """``-o sealed`` (the store's layers): no walk of a layer the index knows, whatever
    happened to it; a layer it does not know yet is indexed all the same."""
    top, bottom = make_layer(tmp_path / "top", TOP), make_layer(tmp_path / "bottom", BOTTOM)
    assert mounting.prepare(str(indexdir), [str(bottom)], check=False) == str(indexdir)
    assert calls.scanned == [real(bottom)]
    (bottom / "added").write_text("not seen: a sealed layer never changes")
    calls.reset()
    assert mounting.prepare(str(indexdir), [str(top), str(bottom)], check=False)
    assert calls.fingerprinted == []
    assert calls.scanned == [real(top)]
    calls.reset()
    with opened(indexdir, [top, bottom]) as checked:  # a mount without the promise looks
        assert checked.view.lstat(b"added") is not None
    assert calls.scanned == [real(bottom)]


def test_a_live_view_keeps_its_tree_when_another_mount_indexes_the_layer_again(
    tmp_path: Path, indexdir: Path
) -> None:
    """A layer changed under a live mount (podman mounts a layer as an upper for a diff while
    containers use it as a lower) is indexed again by the next mount; the live one keeps
    serving the tables it opened, which ``prune`` drops once no live mount needs them."""
    dirs = [make_layer(tmp_path / "top", TOP), make_layer(tmp_path / "bottom", BOTTOM)]
    with opened(indexdir, dirs) as first:
        listed = sorted(dict(first.view.scandir(b"")))
        (dirs[1] / "added").write_text("x")
        second = build.open_lowers(first.env, first.layers)  # another mount's opening
        assert second.lstat(b"added") is not None
        assert sorted(dict(first.view.scandir(b""))) == listed
        assert first.view.lstat(b"a") is not None
    assert prune.prune(str(indexdir), frozenset({real(dirs[1])})) == 0  # in use: kept
    assert prune.prune(str(indexdir)) == 1
    with opened(indexdir, dirs) as third:
        assert tables_on_disk(third.env) == tables_in_use(third.env)
        assert len(tables_in_use(third.env)) == 3  # 2 layers and their stack
