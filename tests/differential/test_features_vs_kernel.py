"""Directory renames (redirect_dir) and metadata-only copy-up (metacopy) against kernel
overlayfs mounted with ``redirect_dir=on,metacopy=on,index=on``.

The same pairs as ``test_write_vs_kernel`` (``write_pairs.Pair``), both sides mounted with
every feature on: fixed sequences every run checks, and the random write machine, with a
rule that renames directories more often. At the end kernel overlayfs, with the same
options, must show over unionfs's upper what unionfs showed: the redirect and metacopy
records unionfs wrote are the kernel's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule
from layer_strategies import stacks
from mountutil import Dir, File, Symlink, Whiteout
from test_write_vs_kernel import COMMON, WriteMachine
from write_pairs import (
    ALL_FEATURES,
    Op,
    Pair,
    op_chmod,
    op_chown,
    op_create,
    op_link,
    op_listdir,
    op_mkdir,
    op_read,
    op_remove_tree,
    op_rename,
    op_rmdir,
    op_setxattr,
    op_stat,
    op_truncate,
    op_unlink,
    op_utime,
    op_write,
    rich_stack,
)
from writeutil import open_file

from unionfs.safecalls import RENAME_EXCHANGE, RENAME_NOREPLACE

LONG = b"n" * 200  # LONG/mmm...: an absolute redirect to it is longer than redirect_max
LONG_FILE = LONG + b"/" + b"m" * 60


def deep_stack() -> list[Dir]:
    """rich_stack with a lower tree two levels deep, split over both layers."""
    layers = rich_stack()
    layers[0].children[b"t"] = Dir(
        {b"a": Dir({b"b": Dir({b"f": File(b"tf")}), b"g": File(b"g" * 5000)})}
    )
    layers[1].children[LONG] = Dir({b"m" * 60: File(b"m"), b"sub": Dir({b"y": File(b"y")})})
    layers[1].children[b"t"] = Dir(
        {b"a": Dir({b"b": Dir({b"low": File(b"low")}), b"c": Dir({b"x": File(b"x")})})}
    )
    return layers


SEQUENCES: dict[str, list[tuple[str, Op]]] = {
    # The next three follow unionmount-testsuite's directory rename cases (rename-move-dir,
    # rename-new-pop-dir, rename-mass-dir), which pass on kernel and unionfs alike.
    "rename a merged dir's child, then the dir, then move the child elsewhere": [
        ("rename t/a/b t/a/bx", op_rename(b"t/a/b", b"t/a/bx", 0)),
        ("rename t/a t/ax", op_rename(b"t/a", b"t/ax", 0)),
        ("rename t/ax/bx d/bx", op_rename(b"t/ax/bx", b"d/bx", 0)),
        ("listdir t/ax", op_listdir(b"t/ax")),
        ("listdir d/bx", op_listdir(b"d/bx")),
        ("read d/bx/low", op_read(b"d/bx/low", 0, 10)),
        ("read d/bx/f", op_read(b"d/bx/f", 0, 10)),
        ("stat t/a", op_stat(b"t/a")),
    ],
    "a new dir renamed over a removed merged dir shows only its own entries": [
        ("mkdir n", op_mkdir(b"n", 0o755)),
        ("mkdir n/sub", op_mkdir(b"n/sub", 0o755)),
        ("create n/sub/deep", op_create(b"n/sub/deep", 0o644, 0, b"new")),
        ("rm -rf d", op_remove_tree(b"d")),
        ("rename n d", op_rename(b"n", b"d", 0)),
        ("listdir d", op_listdir(b"d")),
        ("listdir d/sub", op_listdir(b"d/sub")),
        ("read d/sub/deep", op_read(b"d/sub/deep", 0, 10)),
        ("stat n", op_stat(b"n")),
    ],
    "new dirs renamed round a ring of names, then removed": [
        ("mkdir r0", op_mkdir(b"r0", 0o755)),
        ("create r0/a", op_create(b"r0/a", 0o644, 0, b"0")),
        ("mkdir r1", op_mkdir(b"r1", 0o755)),
        ("create r1/a", op_create(b"r1/a", 0o644, 0, b"1")),
        ("rename r1 r2", op_rename(b"r1", b"r2", 0)),
        ("rename r0 r1", op_rename(b"r0", b"r1", 0)),
        ("rename r2 r0", op_rename(b"r2", b"r0", 0)),
        ("rename r1 r2", op_rename(b"r1", b"r2", 0)),
        ("read r0/a", op_read(b"r0/a", 0, 5)),
        ("read r2/a", op_read(b"r2/a", 0, 5)),
        ("rm -rf r0", op_remove_tree(b"r0")),
        ("rmdir r2 (not empty)", op_rmdir(b"r2")),
        ("listdir root", op_listdir(b"")),
    ],
    "rename of a merged dir: no EXDEV; the old name is gone; contents follow": [
        ("rename d e", op_rename(b"d", b"e", 0)),
        ("listdir e", op_listdir(b"e")),
        ("listdir e/sub", op_listdir(b"e/sub")),
        ("read e/sub/deep", op_read(b"e/sub/deep", 0, 10)),
        ("stat d", op_stat(b"d")),
        ("listdir root", op_listdir(b"")),
        ("write e/below", op_write(b"e/below", 0, b"NEW", False)),
        ("rename e d (back)", op_rename(b"e", b"d", 0)),
        ("listdir d", op_listdir(b"d")),
        ("read d/below", op_read(b"d/below", 0, 10)),
    ],
    "nested and repeated renames across directories": [
        ("rename t/a/b t/a/c/b2", op_rename(b"t/a/b", b"t/a/c/b2", 0)),
        ("listdir t/a/c/b2", op_listdir(b"t/a/c/b2")),
        ("rename t/a t/z", op_rename(b"t/a", b"t/z", 0)),
        ("listdir t/z/c/b2", op_listdir(b"t/z/c/b2")),
        ("read t/z/c/b2/low", op_read(b"t/z/c/b2/low", 0, 10)),
        ("mkdir n", op_mkdir(b"n", 0o755)),
        ("rename t/z n/z", op_rename(b"t/z", b"n/z", 0)),
        ("rename n/z/c n/c", op_rename(b"n/z/c", b"n/c", 0)),
        ("listdir n/c/b2", op_listdir(b"n/c/b2")),
        ("rename n/c t/a", op_rename(b"n/c", b"t/a", 0)),
        ("listdir t/a", op_listdir(b"t/a")),
        ("listdir t/a/b2", op_listdir(b"t/a/b2")),
        ("mkdir t/a/b2/new", op_mkdir(b"t/a/b2/new", 0o700)),
        ("rename ld d/ld", op_rename(b"ld", b"d/ld", 0)),
        ("listdir d/ld", op_listdir(b"d/ld")),
        ("rename d/ld ld", op_rename(b"d/ld", b"ld", 0)),
        ("listdir ld", op_listdir(b"ld")),
    ],
    "rm -rf of a renamed directory; the old and new names reused": [
        ("rename d e", op_rename(b"d", b"e", 0)),
        ("rm -rf e", op_remove_tree(b"e")),
        ("stat e", op_stat(b"e")),
        ("mkdir d", op_mkdir(b"d", 0o755)),
        ("listdir d", op_listdir(b"d")),
        ("mkdir e", op_mkdir(b"e", 0o755)),
        ("listdir e", op_listdir(b"e")),
        ("rename t t2", op_rename(b"t", b"t2", 0)),
        ("rmdir t2: not empty", op_rmdir(b"t2")),
        ("rm -rf t2/a/b", op_remove_tree(b"t2/a/b")),
        ("rm -rf t2", op_remove_tree(b"t2")),
        ("listdir root", op_listdir(b"")),
    ],
    "renames onto existing names and with flags": [
        ("mkdir x", op_mkdir(b"x", 0o755)),
        ("rename d x (over an empty dir)", op_rename(b"d", b"x", 0)),
        ("listdir x", op_listdir(b"x")),
        ("rename x gone (over a whited-out name)", op_rename(b"x", b"gone", 0)),
        ("listdir gone", op_listdir(b"gone")),
        ("noreplace gone o", op_rename(b"gone", b"o", RENAME_NOREPLACE)),
        ("exchange gone o", op_rename(b"gone", b"o", RENAME_EXCHANGE)),
        ("listdir gone", op_listdir(b"gone")),
        ("listdir o", op_listdir(b"o")),
        ("exchange t ld", op_rename(b"t", b"ld", RENAME_EXCHANGE)),
        ("listdir t", op_listdir(b"t")),
        ("listdir ld/a", op_listdir(b"ld/a")),
    ],
    "metadata-only copy-up: chmod, chown, utime, setxattr; then data writes": [
        ("chmod big", op_chmod(b"big", 0o600)),
        ("read big", op_read(b"big", 1000, 40)),
        ("chown f", op_chown(b"f", 1000, 1000)),
        ("utime d/below", op_utime(b"d/below", 5, 1_000_000_009)),
        ("setxattr t/a/g user.m", op_setxattr(b"t/a/g", b"user.m", b"1")),
        ("read t/a/g", op_read(b"t/a/g", 0, 10)),
        ("write big", op_write(b"big", 10, b"XYZ", False)),
        ("read big", op_read(b"big", 0, 40)),
        ("truncate f", op_truncate(b"f", 5, False)),
        ("read f", op_read(b"f", 0, 40)),
        ("write d/below", op_write(b"d/below", 0, b"B", True)),
        ("rename t/a/g t/g2", op_rename(b"t/a/g", b"t/g2", 0)),
        ("read t/g2", op_read(b"t/g2", 4990, 40)),
    ],
    "metacopy files under renamed directories; link and unlink": [
        ("chmod d/below", op_chmod(b"d/below", 0o600)),
        ("rename d e", op_rename(b"d", b"e", 0)),
        ("read e/below", op_read(b"e/below", 0, 10)),
        ("chown e/top", op_chown(b"e/top", 7, 7)),
        ("rename e/top e/sub/top", op_rename(b"e/top", b"e/sub/top", 0)),
        ("read e/sub/top", op_read(b"e/sub/top", 0, 10)),
        ("chmod t/a/b/low", op_chmod(b"t/a/b/low", 0o640)),
        ("link t/a/b/low t/l2", op_link(b"t/a/b/low", b"t/l2")),
        ("write t/l2", op_write(b"t/l2", 0, b"L", False)),
        ("read t/a/b/low", op_read(b"t/a/b/low", 0, 10)),
        ("unlink e/below", op_unlink(b"e/below")),
        ("chmod f", op_chmod(b"f", 0o444)),
        ("truncate f to 0", op_truncate(b"f", 0, True)),
    ],
    "redirects longer than redirect_max: EXDEV where the kernel records one": [
        ("link LONG/m.. new", op_link(LONG_FILE, b"new")),
        ("rename LONG/m.. new", op_rename(LONG_FILE, b"new", 0)),
        ("rename LONG/m.. LONG/short (same dir)", op_rename(LONG_FILE, LONG + b"/short", 0)),
        ("rename LONG/short x", op_rename(LONG + b"/short", b"x", 0)),
        ("rename LONG/sub sub2", op_rename(LONG + b"/sub", b"sub2", 0)),
        ("listdir sub2", op_listdir(b"sub2")),
        ("chmod f", op_chmod(b"f", 0o600)),
        ("link f d/f2 (a metacopy file)", op_link(b"f", b"d/f2")),
        ("read d/f2", op_read(b"d/f2", 0, 20)),
    ],
    "hard links of a lower file survive copy-up (index=on)": [
        ("write h1", op_write(b"h1", 0, b"changed", False)),
        ("stat h1", op_stat(b"h1")),
        ("stat h2", op_stat(b"h2")),
        ("read h2", op_read(b"h2", 0, 20)),
        ("link h2 h3", op_link(b"h2", b"h3")),
        ("stat h1", op_stat(b"h1")),
        ("unlink h1", op_unlink(b"h1")),
        ("stat h3", op_stat(b"h3")),
        ("chmod h3", op_chmod(b"h3", 0o600)),
        ("stat h2", op_stat(b"h2")),
    ],
    "removing and renaming names of a lower hard link before any copy-up": [
        ("unlink h2", op_unlink(b"h2")),
        ("stat h1", op_stat(b"h1")),
        ("rename h1 h2", op_rename(b"h1", b"h2", 0)),
        ("stat h2", op_stat(b"h2")),
        ("read h2", op_read(b"h2", 0, 20)),
    ],
    "rename between two names of a lower hard link does nothing": [
        ("rename h1 h2", op_rename(b"h1", b"h2", 0)),
        ("stat h1", op_stat(b"h1")),
        ("stat h2", op_stat(b"h2")),
        ("chown h2", op_chown(b"h2", 5, 5)),
        ("stat h1", op_stat(b"h1")),
        ("rename d/top h1 (over a name of the link)", op_rename(b"d/top", b"h1", 0)),
        ("stat h2", op_stat(b"h2")),
    ],
}


def rotated_stack() -> list[Dir]:
    """Two lowers, the top one an upper of an earlier mount: metacopy files there (one
    renamed, two names of one linked file) whose data is in the layer below."""
    body = b"#" * 12  # a metacopy file's own body is never its data
    to_foo = {"trusted.overlay.metacopy": b"", "trusted.overlay.redirect": b"/a/foo"}
    to_h = {"trusted.overlay.metacopy": b"", "trusted.overlay.redirect": b"/a/h"}
    top = {
        b"bar": File(body, xattrs=to_foo),
        b"foo": Whiteout("chr"),
        b"h": File(body, link=1, xattrs=to_h),
        b"h2": File(body, link=1, xattrs=to_h),
    }
    below = {b"foo": File(b":xxx:yyy:zzz"), b"h": File(b"linked data!")}
    return [Dir({b"a": Dir(top)}), Dir({b"a": Dir(below)})]


# After unionmount-testsuite's hard-link and rename-hard-link with --ov=2 and metacopy: the
# upper of one mount is a lower of the next, so a metacopy file can sit on another one.
ROTATED: dict[str, list[tuple[str, Op]]] = {
    "data through a metacopy file in a lower layer": [
        ("read a/bar", op_read(b"a/bar", 0, 20)),
        ("link a/bar a/foo2", op_link(b"a/bar", b"a/foo2")),
        ("read a/foo2", op_read(b"a/foo2", 0, 20)),
        ("rename a/bar a/baz", op_rename(b"a/bar", b"a/baz", 0)),
        ("read a/baz", op_read(b"a/baz", 0, 20)),
        ("stat a/baz", op_stat(b"a/baz")),
    ],
    "copy-up of a linked lower metacopy file": [
        ("read a/h2", op_read(b"a/h2", 0, 20)),
        ("chmod a/h2", op_chmod(b"a/h2", 0o600)),
        ("read a/h2", op_read(b"a/h2", 0, 20)),
        ("rename a/h2 a/h3", op_rename(b"a/h2", b"a/h3", 0)),
        ("read a/h3", op_read(b"a/h3", 0, 20)),
        ("read a/h", op_read(b"a/h", 0, 20)),
    ],
}


@pytest.mark.parametrize("title", list(ROTATED))
def test_rotated_upper_sequence_matches_kernel(title: str) -> None:
    base = Path(tempfile.mkdtemp(prefix="unionfs-feat-"))
    pair = Pair(base, rotated_stack(), unionfs_forms=False, features=ALL_FEATURES)
    pair.run(ROTATED[title])


@pytest.mark.parametrize("title", list(SEQUENCES))
def test_feature_sequence_matches_kernel(title: str) -> None:
    base = Path(tempfile.mkdtemp(prefix="unionfs-feat-"))
    pair = Pair(base, deep_stack(), unionfs_forms=True, features=ALL_FEATURES)
    pair.run(SEQUENCES[title])


def test_a_rename_refused_after_copy_up_keeps_one_inode_per_directory() -> None:
    """The exchange copies both sides up, then the redirect it needs is too long: EXDEV.
    The copied-up directory must keep its inode, or the kernel holds two dentries for it
    and misses that a rename onto it from inside targets an ancestor (ENOTEMPTY)."""
    n9, n7, z = b"n" * 229, b"n" * 227, b"z" * 255
    zn7 = z + b"/" + n7
    layers = [Dir({n9: Dir({n7: Dir({n7: File(b"Lm")})}), n7: Symlink(b"../../etc/passwd")})]
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-feat-")), layers, unionfs_forms=True,
                features=ALL_FEATURES)  # fmt: skip
    pair.run(
        [
            ("rename N9 Z", op_rename(n9, z, 0)),
            ("exchange Z/N7 N7: EXDEV", op_rename(zn7, n7, RENAME_EXCHANGE)),
            ("rename Z/N7/N7 Z/N7: ENOTEMPTY", op_rename(zn7 + b"/" + n7, zn7, 0)),
            ("stat Z/N7", op_stat(zn7)),
        ]
    )


def op_one_inode(a: bytes, b: bytes) -> Op:
    """Whether *a* and *b* show one inode: the same st_ino, link count, mode and times."""

    def run(root: int) -> object:
        shown = []
        for path in (a, b):
            fd = open_file(root, path, os.O_PATH | os.O_NOFOLLOW)
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            shown.append((st.st_ino, st.st_nlink, st.st_mode, st.st_mtime_ns, st.st_ctime_ns))
        return shown[0] == shown[1]

    return run


def upper_paths(upper: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(top, name), upper)
        for top, dirs, files in os.walk(upper)
        for name in dirs + files
    )


def test_a_lookup_links_no_name_up_as_on_the_kernel() -> None:
    """index=on: after a chmod of one name of a lower hard link, a stat or a read of
    another name (in another directory) shows the copy and writes nothing: the upper holds
    the one name, as the kernel's does (it links a name up only when copying it up,
    ovl_link_up); writing the other name links it up, on both."""
    linked = Dir({b"x": Dir({b"h1": File(b"linked", link=1)}),
                  b"y": Dir({b"h2": File(b"", link=1)})})  # fmt: skip
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-feat-")), [linked], unionfs_forms=True,
                features=ALL_FEATURES)  # fmt: skip
    # The lookups of reading every listing would resolve the hard link's node by x/h1 last:
    # see the next test.
    pair.check_reads = False
    try:
        pair.mount()
        for what, op in [
            ("chmod x/h1", op_chmod(b"x/h1", 0o600)),
            ("stat y/h2", op_stat(b"y/h2")),
            ("read y/h2", op_read(b"y/h2", 0, 20)),
            ("listdir y", op_listdir(b"y")),
        ]:
            pair.apply(what, op)
        assert pair.apply("one inode", op_one_inode(b"x/h1", b"y/h2")) == ("ok", True)
        for upper in (pair.dirs["k/upper"], pair.dirs["u/upper"]):
            assert upper_paths(upper) == ["x", "x/h1"], upper
        pair.apply("write y/h2", op_write(b"y/h2", 0, b"L", False))
        assert pair.apply("one inode", op_one_inode(b"x/h1", b"y/h2")) == ("ok", True)
        for upper in (pair.dirs["k/upper"], pair.dirs["u/upper"]):
            assert upper_paths(upper) == ["x", "x/h1", "y", "y/h2"], upper
        pair.finish()
    finally:
        pair.close()


def test_writing_a_name_links_it_up_whichever_name_was_looked_up_last() -> None:
    """Issue 16.2 (fixed with 19.9): a listing gives an inode the kernel holds by name only,
    so the node keeps resolving by the name it was looked up by; before, READDIRPLUS moved
    it to x/h1 and the write through the kernel's cached y/h2 never linked y/h2 up."""
    linked = Dir({b"x": Dir({b"h1": File(b"linked", link=1)}),
                  b"y": Dir({b"h2": File(b"", link=1)})})  # fmt: skip
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-feat-")), [linked], unionfs_forms=True,
                features=ALL_FEATURES)  # fmt: skip
    pair.check_reads = False
    try:
        pair.mount()
        for what, op in [
            ("chmod x/h1", op_chmod(b"x/h1", 0o600)),
            ("stat y/h2", op_stat(b"y/h2")),
            ("listdir y", op_listdir(b"y")),
            ("listdir x", op_listdir(b"x")),  # READDIRPLUS: x/h1 by name only
            ("write y/h2", op_write(b"y/h2", 0, b"L", False)),
        ]:
            pair.apply(what, op)
        for upper in (pair.dirs["k/upper"], pair.dirs["u/upper"]):
            assert upper_paths(upper) == ["x", "x/h1", "y", "y/h2"], upper
    finally:
        pair.close()


class FeatureMachine(WriteMachine):
    """The write machine with every feature on, and directory renames drawn often."""

    features = ALL_FEATURES

    @initialize(
        layers=st.one_of(stacks(max_layers=3, max_depth=3), st.builds(deep_stack)),
        unionfs_forms=st.booleans(),
    )
    def mount(self, layers: list[Dir], unionfs_forms: bool) -> None:
        super().mount(layers, unionfs_forms)

    @rule(data=st.data(), flags=st.sampled_from([0, 0, 0, RENAME_EXCHANGE]))
    def rename_dir(self, data: st.DataObject, flags: int) -> None:
        src = self._path(data, "src", "dir")
        dst = self._path(data, "dst", "fresh")
        self._run(f"rename dir {src!r} {dst!r} flags={flags}", op_rename(src, dst, flags))

    @rule(data=st.data())
    def remove_tree(self, data: st.DataObject) -> None:
        path = self._path(data, "path", "dir")
        self._run(f"rm -rf {path!r}", op_remove_tree(path))


class TestFeaturesMatchKernel(FeatureMachine.TestCase):  # type: ignore[name-defined]
    settings = settings(max_examples=25, stateful_step_count=20, **COMMON)


def test_remove_tree_counts(tmp_path: Path) -> None:
    """op_remove_tree itself: it removes what it says (a guard for the sequences above)."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"")
    root = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        assert op_remove_tree(b"a")(root) == 3
    finally:
        os.close(root)
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
class TestManyFeaturesMatchKernel(FeatureMachine.TestCase):  # type: ignore[name-defined]
    settings = settings(max_examples=400, stateful_step_count=30, **COMMON)
