"""Building an index and serving a stack from it, without mounting.

``IndexedLowers`` must answer every call exactly as the union rules do over the layer
directories: the oracle is ``union.readdir``/``union.lookup`` on a ``Stack`` of
``DirLayer``s, checked both by ``index.verify`` and by ``indexutil.compare`` (call by call,
data included). A second open of a known stack must not scan or merge anything again.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from layers import (
    WHITEOUT_CHR,
    Device,
    Dir,
    Fifo,
    File,
    Hardlink,
    Opaque,
    Symlink,
)
from layers import build as make_layer

from unionfs.index import build, codec, verify
from unionfs.index.env import IndexEnv, IndexUnavailable
from unionfs.union.lookup import lookup
from unionfs.union.stack import Stack

from .indexutil import (
    HASHED_NAME,
    LONG_CLEAN,
    LONG_NUL,
    Calls,
    compare,
    dir_layers,
    marker_leaks,
    opened,
    real,
    stack_records,
    tamper,
    with_size,
)

LONG_NAME = "N" * 255
DEEP = "/".join(["a" * 90, "b" * 90, "c" * 90])  # a parent path longer than 200 bytes

TOP = {
    "keep": "top",
    "shadow": "from top",
    "gone_chr": WHITEOUT_CHR,
    ".wh.gone_wh": "",
    ".wh.gone_dir": "",
    "gone_dir_chr": WHITEOUT_CHR,
    "opq_trusted/": Opaque({"t": "t"}, form="trusted"),
    "opq_user/": Opaque({"u": "u"}, form="user"),
    "opq_marker/": Opaque({"m": "m"}, form="marker"),
    "not_opaque/": Dir({"n": "n"}, xattrs={"trusted.overlay.opaque": "n"}),
    "merged/": Dir(
        {"top": "t", "shadow": "top", "gone": WHITEOUT_CHR, ".wh.gone2": "", "sub/": {"s": "1"}},
        xattrs={"user.level": "top"},
    ),
    "dir_over_file/": {"y": "y"},
    "file_over_dir": "f",
    "link": Symlink("../elsewhere/x"),
    "abs_link": Symlink("/etc/passwd"),
    "fifo": Fifo(),
    "dev": Device(1, 3),
    "exe": File("#!/bin/sh\n", mode=0o755, xattrs={"user.a": "1", "user.b": b"\0\xff"}),
    "hard1": "h",
    "hard2": Hardlink("hard1"),
    "only_top/": {"real": "r", "ghost": WHITEOUT_CHR, ".wh.ghost2": ""},
    "both": "real beats its own .wh. file",
    ".wh.both": "",
    LONG_NAME: "long name",
    b"odd \xff\xfe\x01 name": b"\xff" * 3,
    DEEP + "/top": "deep top",
    "resurrected": "top again",
}
MIDDLE = {
    "shadow": "from middle",
    "gone_chr": "hidden",
    "gone_wh": "hidden",
    "gone_dir/": {"a": "hidden"},
    "gone_dir_chr/": {"b": "hidden"},
    "opq_trusted/": {"hidden_t": "h"},
    "opq_user/": {"hidden_u": "h"},
    "opq_marker/": {"hidden_m": "h"},
    "not_opaque/": {"below": "b"},
    "merged/": Dir(
        {"mid": "m", "shadow": "mid", "gone": "hidden", "gone2": "hidden", "sub/": {"m": "2"}},
        xattrs={"user.level": "mid"},
    ),
    "dir_over_file": "a file under a directory",
    "file_over_dir/": {"under": "u"},
    "only_middle/": {"x": "x"},
    "resurrected": WHITEOUT_CHR,
    DEEP + "/middle": "deep middle",
}
BOTTOM = {
    "merged/": {"bottom": "b", "sub/": {"low": "l"}},
    "opq_trusted/": {"deeper": "d"},
    "gone_chr": "also hidden",
    "resurrected": "hidden by the middle",
    "below_whiteout": "b",
    DEEP + "/bottom": "deep bottom",
}


def three_layers(tmp_path: Path) -> list[Path]:
    return [
        make_layer(tmp_path / "top", TOP),
        make_layer(tmp_path / "middle", MIDDLE),
        make_layer(tmp_path / "bottom", BOTTOM),
    ]


def test_open_lowers_builds_an_index_that_verify_finds_equal_to_the_rules(
    tmp_path: Path, indexdir: Path
) -> None:
    dirs = three_layers(tmp_path)
    with opened(indexdir, dirs) as index:
        assert (indexdir / "data.mdb").exists()
        assert verify.verify(index.view, index.layers) == []


def test_every_call_of_the_indexed_view_answers_as_the_rules_over_the_directories(
    tmp_path: Path, indexdir: Path
) -> None:
    dirs = three_layers(tmp_path)
    with opened(indexdir, dirs) as index:
        assert compare(index.view, index.layers) == []


def test_whiteouts_in_both_forms_hide_lower_entries(tmp_path: Path, indexdir: Path) -> None:
    with opened(indexdir, three_layers(tmp_path)) as index:
        view = index.view
        for hidden in (b"gone_chr", b"gone_wh", b"gone_dir", b"gone_dir_chr", b"merged/gone",
                       b"merged/gone2", b"only_top/ghost", b"only_top/ghost2"):  # fmt: skip
            assert view.lstat(hidden) is None, hidden
        assert b"gone2" not in dict(view.scandir(b"merged"))
        assert view.lstat(b"resurrected") is not None  # a whiteout hides only what is below
        assert view.lstat(b"both") is not None  # a real entry beats its own .wh. file
        assert b"only_middle" in dict(view.scandir(b""))


def test_opaque_directories_in_all_three_forms_hide_what_is_below(
    tmp_path: Path, indexdir: Path
) -> None:
    with opened(indexdir, three_layers(tmp_path)) as index:
        view = index.view
        assert sorted(dict(view.scandir(b"opq_trusted"))) == [b"t"]
        assert sorted(dict(view.scandir(b"opq_user"))) == [b"u"]
        assert sorted(dict(view.scandir(b"opq_marker"))) == [b"m"]
        assert sorted(dict(view.scandir(b"not_opaque"))) == [b"below", b"n"]
        merged = sorted(dict(view.scandir(b"merged")))
        assert merged == [b"bottom", b"mid", b"shadow", b"sub", b"top"]
        assert sorted(dict(view.scandir(b"merged/sub"))) == [b"low", b"m", b"s"]
        assert view.lstat(b"merged").st_nlink == 1  # a merged directory, as the kernel says
        assert sorted(dict(view.scandir(DEEP.encode()))) == [b"bottom", b"middle", b"top"]


def test_markers_never_appear_in_the_indexed_view(tmp_path: Path, indexdir: Path) -> None:
    with opened(indexdir, three_layers(tmp_path)) as index:
        assert marker_leaks(index.view) == []
        for marker in (b".wh.gone_wh", b".wh.both", b"opq_marker/.wh..wh..opq"):
            assert index.view.lstat(marker) is None
        stack = Stack([index.view])
        assert lookup(stack, stack.root(), b".wh.gone_wh") is None


def test_the_view_keeps_types_data_and_the_layer_each_entry_comes_from(
    tmp_path: Path, indexdir: Path
) -> None:
    dirs = three_layers(tmp_path)
    with opened(indexdir, dirs) as index:
        view = index.view
        assert stat.S_ISFIFO(view.lstat(b"fifo").st_mode)
        dev = view.lstat(b"dev")
        assert stat.S_ISCHR(dev.st_mode) and dev.st_rdev == os.makedev(1, 3)
        assert view.readlink(b"link") == b"../elsewhere/x"
        assert view.getxattr(b"exe", b"user.b") == b"\0\xff"
        assert sorted(view.listxattr(b"exe")) == [b"user.a", b"user.b"]
        assert stat.S_IMODE(view.lstat(b"exe").st_mode) == 0o755
        assert view.lstat(b"hard1").st_nlink == 2
        assert view.lstat(b"hard1").st_ino == view.lstat(b"hard2").st_ino
        assert view.layer_of(b"shadow").root == str(dirs[0])
        assert view.layer_of(b"merged/mid").root == str(dirs[1])
        assert view.layer_of(b"merged/sub/low").root == str(dirs[2])
        fd = view.open(b"merged/shadow", os.O_RDONLY)
        try:
            assert os.read(fd, 100) == b"top"
        finally:
            os.close(fd)
        assert stat.S_ISDIR(view.lstat(b"dir_over_file").st_mode)
        assert stat.S_ISREG(view.lstat(b"file_over_dir").st_mode)
        assert view.lstat(b"file_over_dir/under") is None


def test_a_single_layer_stack_is_served_as_it_is_on_disk(tmp_path: Path, indexdir: Path) -> None:
    only = make_layer(tmp_path / "only", {"a": "1", "d/": {"e": "2"}, "s": Symlink("a")})
    with opened(indexdir, [only]) as index:
        assert verify.verify(index.view, index.layers) == []
        assert compare(index.view, index.layers) == []


def test_a_second_open_of_the_same_stack_does_not_scan_or_merge_again(
    tmp_path: Path, indexdir: Path, calls: Calls
) -> None:
    dirs = three_layers(tmp_path)
    with opened(indexdir, dirs) as first:
        table = first.view.table
    assert sorted(calls.scanned) == sorted(real(d) for d in dirs)
    assert calls.merged == 1
    calls.reset()
    with opened(indexdir, dirs) as second:
        assert second.view.table == table
        assert compare(second.view, second.layers) == []
    assert calls.scanned == []
    assert calls.merged == 0


def test_an_unchecked_open_reads_no_layer_at_all(
    tmp_path: Path, indexdir: Path, calls: Calls
) -> None:
    """What the daemon does after ``unionfs mount`` checked the index."""
    dirs = three_layers(tmp_path)
    with opened(indexdir, dirs):
        pass
    calls.reset()
    with opened(indexdir, dirs, check=False) as index:
        assert verify.verify(index.view, index.layers) == []
    assert (calls.scanned, calls.fingerprinted, calls.merged) == ([], [], 0)


def test_a_stack_sharing_layers_with_another_reuses_their_tables(
    tmp_path: Path, indexdir: Path, calls: Calls
) -> None:
    top, middle, bottom = three_layers(tmp_path)
    other = make_layer(tmp_path / "other", {"merged/": {"other": "o"}, "shadow": "other"})
    with opened(indexdir, [top, middle, bottom]):
        pass
    calls.reset()
    with opened(indexdir, [other, middle, bottom]) as index:
        assert verify.verify(index.view, index.layers) == []
        assert calls.scanned == [real(other)]
    calls.reset()
    with opened(indexdir, [bottom, top]) as index:  # the same layers in another order
        assert verify.verify(index.view, index.layers) == []
        assert compare(index.view, index.layers) == []
    assert calls.scanned == []
    assert calls.merged == 1
    env = IndexEnv(str(indexdir))
    try:
        assert len(stack_records(env)) == 3
    finally:
        env.close()


def test_the_same_directory_twice_in_one_stack_is_served_by_the_rules(
    tmp_path: Path, indexdir: Path
) -> None:
    top, middle, _ = three_layers(tmp_path)
    with opened(indexdir, [top, middle, top]) as index:
        assert verify.verify(index.view, index.layers) == []
        assert compare(index.view, index.layers) == []


def test_a_directory_named_like_a_hashed_long_parent_lists_only_its_own_children(
    tmp_path: Path, indexdir: Path
) -> None:
    """Names are any bytes: a directory may be called what the codec writes in place of a
    long parent path. Each directory must still list exactly its own children."""
    layer = make_layer(
        tmp_path / "layer",
        {
            LONG_CLEAN + b"/long_child": "l",
            HASHED_NAME + b"/short_child": "s",
            LONG_NUL + b"/nul_child": "n",
            b"\xff\xfe/own": "o",
        },
    )
    with opened(indexdir, [layer]) as index:
        assert dict(index.view.scandir(HASHED_NAME)).keys() == {b"short_child"}
        assert dict(index.view.scandir(LONG_CLEAN)).keys() == {b"long_child"}
        assert dict(index.view.scandir(b"\xff\xfe")).keys() == {b"own"}
        assert verify.verify(index.view, index.layers) == []


def test_verify_reports_each_path_the_index_gets_wrong(tmp_path: Path, indexdir: Path) -> None:
    """The oracle itself: verify is not blind to a difference."""
    dirs = three_layers(tmp_path)
    with opened(indexdir, dirs) as index:
        table = index.view.table
        tamper(index.env, table, b"merged/mid", with_size(99))
        with index.env.write() as txn:
            txn.delete(codec.entry_key(table, b"keep"), db=index.env.entries)
        problems = verify.verify(index.view, index.layers)
        assert problems == ["keep: missing from the index", "merged/mid: differs in st_size"]
        assert compare(index.view, index.layers)


def test_verify_reports_a_stack_table_that_lost_everything(tmp_path: Path, indexdir: Path) -> None:
    """An fsck must describe the worst damage too, not fail on it."""
    dirs = three_layers(tmp_path)
    with opened(indexdir, dirs) as index:
        with index.env.write() as txn:
            index.env.drop_table(txn, index.view.table)
        problems = verify.verify(index.view, index.layers)
        assert problems and problems[0].startswith("/: ")


def test_the_layer_order_decides_which_layer_wins(tmp_path: Path, indexdir: Path) -> None:
    top, middle, bottom = three_layers(tmp_path)
    with opened(indexdir, [middle, top]) as index:
        assert verify.verify(index.view, index.layers) == []
        fd = index.view.open(b"shadow", os.O_RDONLY)
        try:
            assert os.read(fd, 100) == b"from middle"
        finally:
            os.close(fd)
        assert index.view.lstat(b"resurrected") is None  # the middle's whiteout now on top
    with dir_layers([bottom]) as alone:
        env = IndexEnv(str(indexdir))
        try:
            view = build.open_lowers(env, alone)
            assert view.lstat(b"resurrected") is not None
        finally:
            env.close()


def test_a_lower_layer_with_overlay_redirects_is_served_directly(
    tmp_path: Path, indexdir: Path
) -> None:
    """An old upper used as a lower: a renamed directory's contents are elsewhere, which a
    stack table cannot say; the index declines (every time), the mount uses the rules."""
    top = make_layer(tmp_path / "top", {"new/": {}, "old": WHITEOUT_CHR})
    os.setxattr(top / "new", "trusted.overlay.redirect", b"/old")
    bottom = make_layer(tmp_path / "bottom", {"old/": {"f": "data"}})
    for _ in range(2):
        with dir_layers([top, bottom]) as layers:
            env = IndexEnv(str(indexdir))
            try:
                with pytest.raises(IndexUnavailable, match="redirect or metacopy"):
                    build.open_lowers(env, layers)
            finally:
                env.close()
    stack = Stack.from_dirs([str(top), str(bottom)])
    try:
        found = lookup(stack, stack.root(), b"new")
        assert found is not None and found.path_in(1) == b"old"
    finally:
        stack.close()
