"""A read-only unionfs mount of a 3-layer stack, next to kernel overlayfs of the same stack.

One mount of each for the module (the tests only read); the write tests get their own.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mountutil import (
    Dir,
    File,
    Symlink,
    Whiteout,
    build_stack,
    fresh_dir,
    fstype,
    kernel_overlay,
    tree,
    unionfs_mount,
)
from treecmp import diff_trees, drop_unstatable, marker_leaks, snapshot

BIG = bytes(range(251)) * 4500 + b"tail"  # ~1.1 MB, not a multiple of any block size
LONG = "L" * 255

TOP = tree(
    {
        "keep_top": b"top file",
        "gone_chr": Whiteout("chr"),
        "gone_dir": Whiteout("wh"),
        "dir_trusted": Dir({b"c": File(b"c")}, opaque="trusted"),
        "dir_wh": Dir({b"w": File(b"w")}, opaque="wh"),
        "merged": Dir(
            {b"top": File(b"t"), b"shadow": File(b"from top")}, xattrs={"user.level": b"top"}
        ),
        "dir_over_file": {"y": b"y"},
        "hard1": File(b"hard", link=1),
        "hard2": File(b"hard", link=1),
        "escape": Symlink(b"/etc"),
        "rel_escape": Symlink(b"../../etc/passwd"),
        "d": {"top": b"t"},
        "p": {"etc": {}},
        "sym_over_dir": Symlink(b"/etc"),
        "big": BIG,
        LONG: b"long name",
        "only_top": {"real": b"r", "ghost_chr": Whiteout("chr"), "ghost_wh": Whiteout("wh")},
    }
)
MIDDLE = tree(
    {
        "gone_wh": Whiteout("wh"),
        "merged": Dir(
            {
                b"mid": File(b"m"),
                b"shadow": File(b"from middle"),
                b"low": Whiteout("chr"),
                b"sub": tree({"m": b"m"}),
            },
            xattrs={"user.level": b"middle"},
        ),
        "dir_user": Dir({b"u": File(b"u")}, opaque="user"),
        "nondir_over_dir": b"I am a file",
        "d": Symlink(b"/etc"),
        "p": Symlink(b"/"),
        "sym_over_dir": {"x": b"x"},
    }
)
BOTTOM = tree(
    {
        "keep_bottom": b"bottom",
        "gone_chr": b"hidden",
        "gone_wh": b"hidden",
        "gone_dir": {"inner": b"hidden"},
        "dir_trusted": {"a": b"a", "b": b"b"},
        "dir_user": {"a": b"a"},
        "dir_wh": {"a": b"a"},
        "merged": {"low": b"low", "shadow": b"from bottom", "bottom": b"b", "sub": {"l": b"l"}},
        "nondir_over_dir": {"x": b"x"},
        "dir_over_file": b"a file below a dir",
        "d": {"x": b"below the symlink"},
    }
)
STACK = [TOP, MIDDLE, BOTTOM]
ROOT_NAMES = {
    "keep_top", "keep_bottom", "dir_trusted", "dir_user", "dir_wh", "merged", "dir_over_file",
    "nondir_over_dir", "hard1", "hard2", "escape", "rel_escape", "d", "p", "sym_over_dir",
    "big", LONG, "only_top",
}  # fmt: skip


@pytest.fixture(scope="module", params=["indexed", "direct"])
def views(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, Path]]:
    """(kernel overlayfs mount, unionfs mount) of STACK; unionfs serves the lowers from its
    index, or directly."""
    extra = ("indexdir=off",) if request.param == "direct" else ()
    base = tmp_path_factory.mktemp("view")
    kdir, udir = fresh_dir(base, "k"), fresh_dir(base, "u")
    k_lowers = build_stack(kdir, STACK, kernel=True)
    u_lowers = build_stack(udir, STACK, kernel=False)
    kmnt, umnt = fresh_dir(kdir, "mnt"), fresh_dir(udir, "mnt")
    with kernel_overlay(k_lowers, kmnt), unionfs_mount(u_lowers, umnt, extra_opts=extra):
        yield kmnt, umnt


@pytest.fixture
def mnt(views: tuple[Path, Path]) -> Path:
    return views[1]


def test_view_matches_kernel_overlay(views: tuple[Path, Path]) -> None:
    kmnt, umnt = views
    assert diff_trees(drop_unstatable(snapshot(kmnt)), snapshot(umnt)) == []


def test_mount_is_listed_as_fuse_unionfs(mnt: Path) -> None:
    assert fstype(mnt) == "fuse.unionfs"


def test_whiteout_hides_lower_entries_in_both_forms(mnt: Path) -> None:
    assert set(os.listdir(mnt)) == ROOT_NAMES
    for name in ("gone_chr", "gone_wh", "gone_dir", "gone_dir/inner"):
        with pytest.raises(FileNotFoundError):
            os.lstat(mnt / name)


@pytest.mark.parametrize(
    ("name", "shown"), [("dir_trusted", ["c"]), ("dir_user", ["u"]), ("dir_wh", ["w"])]
)
def test_opaque_dir_hides_lower_entries(mnt: Path, name: str, shown: list[str]) -> None:
    assert sorted(os.listdir(mnt / name)) == shown
    with pytest.raises(FileNotFoundError):
        os.lstat(mnt / name / "a")


def test_merged_dir_combines_layers_and_top_wins(mnt: Path) -> None:
    assert sorted(os.listdir(mnt / "merged")) == ["bottom", "mid", "shadow", "sub", "top"]
    assert (mnt / "merged/shadow").read_bytes() == b"from top"
    assert sorted(os.listdir(mnt / "merged/sub")) == ["l", "m"]
    assert os.getxattr(mnt / "merged", "user.level") == b"top"
    with pytest.raises(FileNotFoundError):
        os.lstat(mnt / "merged/low")


def test_nondir_hides_lower_dir_and_dir_hides_lower_file(mnt: Path) -> None:
    assert (mnt / "nondir_over_dir").read_bytes() == b"I am a file"
    with pytest.raises(NotADirectoryError):
        os.lstat(mnt / "nondir_over_dir/x")
    assert os.listdir(mnt / "dir_over_file") == ["y"]


def test_readdir_never_shows_markers(mnt: Path) -> None:
    assert marker_leaks(snapshot(mnt)) == []
    # a directory of one layer only: the kernel would list its whiteouts here
    assert os.listdir(mnt / "only_top") == ["real"]


@pytest.mark.parametrize("name", ["dir_trusted", "dir_user", "dir_wh", "merged", "only_top"])
def test_listxattr_never_shows_overlay_xattrs(mnt: Path, name: str) -> None:
    names = os.listxattr(mnt / name, follow_symlinks=False)
    assert [n for n in names if n.startswith(("trusted.overlay.", "user.overlay."))] == []
    for private in ("trusted.overlay.opaque", "user.overlay.opaque"):
        with pytest.raises(OSError):
            os.getxattr(mnt / name, private, follow_symlinks=False)


def test_reading_files_returns_layer_contents(mnt: Path) -> None:
    assert (mnt / "keep_top").read_bytes() == b"top file"
    assert (mnt / "keep_bottom").read_bytes() == b"bottom"
    assert (mnt / "big").read_bytes() == BIG
    fd = os.open(mnt / "big", os.O_RDONLY)
    try:
        for offset in (0, 4095, 131071, 131072, 1 << 20, len(BIG) - 3, len(BIG), len(BIG) + 10):
            assert os.pread(fd, 9000, offset) == BIG[offset : offset + 9000]
    finally:
        os.close(fd)


def test_mmap_reads_file_contents(mnt: Path) -> None:
    with open(mnt / "big", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert len(m) == len(BIG)
        assert m[:] == BIG
        assert m[len(BIG) - 4 :] == b"tail"


def test_statfs_answers(mnt: Path) -> None:
    st = os.statvfs(mnt)
    assert st.f_bsize > 0
    assert st.f_namemax >= 255
    assert os.statvfs(mnt / "merged").f_bsize == st.f_bsize


def test_readlink_returns_target_text_without_following(mnt: Path) -> None:
    assert os.readlink(mnt / "escape") == "/etc"
    assert os.readlink(mnt / "rel_escape") == "../../etc/passwd"
    assert stat.S_ISLNK(os.lstat(mnt / "escape").st_mode)


def test_symlink_in_merged_view_is_resolved_by_the_kernel(mnt: Path) -> None:
    # The kernel follows a symlink it was shown; that leads to the host's /etc, as expected.
    assert sorted(os.listdir(mnt / "escape/")) == sorted(os.listdir("/etc"))


def test_symlink_in_a_lower_layer_is_never_followed_by_lookup(mnt: Path) -> None:
    # d: a dir on top of a symlink d -> /etc (in the middle layer), which stops the merge.
    assert os.listdir(mnt / "d") == ["top"]
    for name in ("passwd", "hostname", "x"):
        with pytest.raises(FileNotFoundError):
            os.lstat(mnt / "d" / name)
    # p/etc: a dir on top of p -> / ; following it would show the host's /etc.
    assert os.listdir(mnt / "p/etc") == []
    with pytest.raises(FileNotFoundError):
        os.lstat(mnt / "p/etc/passwd")


def test_symlink_hides_lower_dir(mnt: Path) -> None:
    st = os.lstat(mnt / "sym_over_dir")
    assert stat.S_ISLNK(st.st_mode)
    assert os.readlink(mnt / "sym_over_dir") == "/etc"


def test_inode_numbers_agree_between_readdir_and_lookup(mnt: Path) -> None:
    def walk(path: Path) -> None:
        with os.scandir(path) as it:
            for entry in it:
                first = os.lstat(entry.path).st_ino
                assert entry.inode() == first, entry.path
                assert os.lstat(entry.path).st_ino == first, entry.path
                if entry.is_dir(follow_symlinks=False):
                    walk(Path(entry.path))

    walk(mnt)


def test_hard_links_in_one_layer_share_inode(mnt: Path) -> None:
    a, b = os.lstat(mnt / "hard1"), os.lstat(mnt / "hard2")
    assert a.st_ino == b.st_ino
    assert a.st_nlink == b.st_nlink == 2


def test_distinct_entries_have_distinct_inodes(mnt: Path) -> None:
    seen: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(mnt):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            seen.setdefault(os.lstat(path).st_ino, []).append(os.path.relpath(path, mnt))
    seen.setdefault(os.lstat(mnt).st_ino, []).append(".")
    shared = sorted(sorted(paths) for paths in seen.values() if len(paths) > 1)
    assert shared == [["hard1", "hard2"]]


def test_dot_and_dotdot_resolve_to_the_right_dirs(mnt: Path) -> None:
    root = os.stat(mnt).st_ino
    assert os.stat(mnt / "merged/..").st_ino == root
    assert os.stat(mnt / "merged/sub/..").st_ino == os.stat(mnt / "merged").st_ino
    assert os.stat(mnt / "merged/.").st_ino == os.stat(mnt / "merged").st_ino
    assert "." not in os.listdir(mnt) and ".." not in os.listdir(mnt)
    for path in (mnt, mnt / "merged", mnt / "only_top"):
        listed = subprocess.run(
            ["ls", "-a1", "--quoting-style=literal", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        assert listed.count(".") == 1 and listed.count("..") == 1, listed


def test_name_of_255_bytes_works_and_256_is_too_long(mnt: Path) -> None:
    assert (mnt / LONG).read_bytes() == b"long name"
    assert LONG in os.listdir(mnt)
    for path in (mnt / (LONG + "x"), mnt / "merged" / ("y" * 256)):
        with pytest.raises(OSError) as info:
            os.lstat(path)
        assert info.value.errno == errno.ENAMETOOLONG


# -- a read-only mount refuses every change --------------------------------------------------

WRITES: dict[str, Callable[[Path], object]] = {
    "open_for_write": lambda m: os.close(os.open(m / "f", os.O_WRONLY)),
    "open_for_append": lambda m: os.close(os.open(m / "f", os.O_RDWR | os.O_APPEND)),
    "create": lambda m: os.close(os.open(m / "new", os.O_CREAT | os.O_WRONLY, 0o644)),
    "truncate": lambda m: os.truncate(m / "f", 0),
    "mkdir": lambda m: os.mkdir(m / "newdir"),
    "unlink": lambda m: os.unlink(m / "f"),
    "rmdir": lambda m: os.rmdir(m / "d"),
    "rename": lambda m: os.rename(m / "f", m / "g"),
    "symlink": lambda m: os.symlink("f", m / "s"),
    "link": lambda m: os.link(m / "f", m / "h"),
    "mknod": lambda m: os.mkfifo(m / "fifo"),
    "chmod": lambda m: os.chmod(m / "f", 0o600),
    "chown": lambda m: os.chown(m / "f", 1, 1),
    "utime": lambda m: os.utime(m / "f", (1, 1)),
    "setxattr": lambda m: os.setxattr(m / "f", "user.x", b"1"),
    "removexattr": lambda m: os.removexattr(m / "f", "user.keep"),
}


@pytest.fixture(scope="module")
def ro_mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("ro")
    layers = [tree({"f": File(b"data", xattrs={"user.keep": b"1"}), "d": {}}), tree({})]
    kdir, udir = fresh_dir(base, "k"), fresh_dir(base, "u")
    k_lowers, u_lowers = build_stack(kdir, layers, True), build_stack(udir, layers, False)
    kmnt, umnt = fresh_dir(kdir, "mnt"), fresh_dir(udir, "mnt")
    with kernel_overlay(k_lowers, kmnt), unionfs_mount(u_lowers[:1], umnt):
        yield kmnt, umnt
    assert (u_lowers[0] / "f").read_bytes() == b"data"
    assert sorted(os.listdir(u_lowers[0])) == ["d", "f"]


@pytest.mark.parametrize("op", sorted(WRITES))
def test_write_on_readonly_mount_fails_with_erofs(ro_mounts: tuple[Path, Path], op: str) -> None:
    for label, m in zip(("kernel", "unionfs"), ro_mounts, strict=True):
        with pytest.raises(OSError) as info:
            WRITES[op](m)
        assert info.value.errno == errno.EROFS, f"{label}: {info.value}"
    assert (ro_mounts[1] / "f").read_bytes() == b"data"
