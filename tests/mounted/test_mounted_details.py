"""Details of a read-only mount: times, errnos, big and deep stacks, readers, changed layers.

Where the kernel is the reference, the same operation runs on kernel overlayfs and on unionfs
over the same stack, and the outcomes (result or errno) must be equal.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mountutil import (
    Dir,
    Fifo,
    File,
    Symlink,
    Whiteout,
    build_stack,
    fresh_dir,
    kernel_overlay,
    tree,
    unionfs_mount,
)
from treecmp import diff_trees, drop_unstatable, snapshot

MTIME_NS = 1_234_567_890_123_456_789
BIG = os.urandom(1 << 16) * 40  # 2.5 MiB

TOP = tree(
    {
        "file": File(b"top", xattrs={"user.k": b"v"}),
        "dir": {"a": b"a"},
        "sym": Symlink(b"file"),
        "fifo": Fifo(0o600),
        "big": BIG,
        "gone": Whiteout("wh"),
        "opq": Dir({b"x": File(b"x")}, opaque="wh"),
    }
)
BOTTOM = tree({"dir": {"b": b"b"}, "gone": b"hidden", "opq": {"y": b"y"}})


@pytest.fixture(scope="module", params=["indexed", "direct"])
def views(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, Path, Path]]:
    """(kernel mount, unionfs mount, unionfs top layer); unionfs with or without its index."""
    extra = ("indexdir=off",) if request.param == "direct" else ()
    base = tmp_path_factory.mktemp("details")
    kdir, udir = fresh_dir(base, "k"), fresh_dir(base, "u")
    k_lowers = build_stack(kdir, [TOP, BOTTOM], kernel=True)
    u_lowers = build_stack(udir, [TOP, BOTTOM], kernel=False)
    for lowers in (k_lowers, u_lowers):
        for name in ("file", "dir", "sym", "fifo", ""):
            os.utime(lowers[0] / name, ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)
    kmnt, umnt = fresh_dir(kdir, "mnt"), fresh_dir(udir, "mnt")
    with kernel_overlay(k_lowers, kmnt), unionfs_mount(u_lowers, umnt, extra_opts=extra):
        yield kmnt, umnt, u_lowers[0]


@pytest.mark.parametrize("name", ["file", "dir", "sym", "fifo", "big", ""])
def test_times_and_blocks_come_from_the_top_layer_entry(
    views: tuple[Path, Path, Path], name: str
) -> None:
    _, mnt, top = views
    seen, real = os.lstat(mnt / name), os.lstat(top / name)
    for attr in ("st_mtime_ns", "st_ctime_ns"):
        assert getattr(seen, attr) == getattr(real, attr), attr
    if not stat.S_ISDIR(real.st_mode):
        assert (seen.st_size, seen.st_blocks) == (real.st_size, real.st_blocks)


def test_marker_names_cannot_be_looked_up(views: tuple[Path, Path, Path]) -> None:
    _, mnt, top = views
    assert (top / ".wh.gone").exists() and (top / "opq/.wh..wh..opq").exists()
    for name in (".wh.gone", "opq/.wh..wh..opq", ".wh.file", ".wh..wh..opq"):
        with pytest.raises(FileNotFoundError):
            os.lstat(mnt / name)


def _read_dir_fd(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 10)
    finally:
        os.close(fd)


def _open_close(path: Path, flags: int) -> str:
    os.close(os.open(path, flags))
    return "opened"


OPS: dict[str, Callable[[Path], object]] = {
    "open_file_as_directory": lambda m: _open_close(m / "file", os.O_RDONLY | os.O_DIRECTORY),
    "open_symlink_nofollow": lambda m: _open_close(m / "sym", os.O_RDONLY | os.O_NOFOLLOW),
    "open_missing": lambda m: _open_close(m / "missing", os.O_RDONLY),
    "open_dir_for_write": lambda m: _open_close(m / "dir", os.O_WRONLY),
    "open_existing_with_creat": lambda m: _open_close(m / "file", os.O_RDONLY | os.O_CREAT),
    "open_readonly_with_trunc": lambda m: _open_close(m / "file", os.O_RDONLY | os.O_TRUNC),
    "open_fifo_nonblocking": lambda m: _open_close(m / "fifo", os.O_RDONLY | os.O_NONBLOCK),
    "read_a_directory": _read_dir_fd,
    "listdir_of_a_file": lambda m: os.listdir(m / "file"),
    "lstat_below_a_file": lambda m: os.lstat(m / "file/x"),
    "readlink_of_a_file": lambda m: os.readlink(m / "file"),
    "readlink_of_a_dir": lambda m: os.readlink(m / "dir"),
    "readlink_of_a_symlink": lambda m: os.readlink(m / "sym"),
    "stat_through_symlink": lambda m: oct(os.stat(m / "sym").st_mode),
    "getxattr_missing": lambda m: os.getxattr(m / "file", "user.missing"),
    "getxattr_present": lambda m: os.getxattr(m / "file", "user.k"),
    "getxattr_on_symlink": lambda m: os.getxattr(m / "sym", "user.k", follow_symlinks=False),
    "listxattr_on_fifo": lambda m: os.listxattr(m / "fifo", follow_symlinks=False),
    "access_write": lambda m: os.access(m / "file", os.W_OK),
    "access_exec_0644": lambda m: os.access(m / "file", os.X_OK),
    "access_read_missing": lambda m: os.access(m / "missing", os.R_OK),
    "opaque_dir_listing": lambda m: sorted(os.listdir(m / "opq")),
    "merged_dir_listing": lambda m: sorted(os.listdir(m / "dir")),
}


def outcome(op: Callable[[Path], object], mnt: Path) -> object:
    try:
        return op(mnt)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, exc.errno)


@pytest.mark.parametrize("op", sorted(OPS))
def test_outcome_matches_kernel(views: tuple[Path, Path, Path], op: str) -> None:
    kmnt, umnt, _ = views
    assert outcome(OPS[op], umnt) == outcome(OPS[op], kmnt)


def test_concurrent_readers_see_consistent_data(views: tuple[Path, Path, Path]) -> None:
    _, mnt, _ = views

    def work(i: int) -> None:
        for _ in range(5):
            assert (mnt / "big").read_bytes() == BIG
            assert sorted(os.listdir(mnt / "dir")) == ["a", "b"]
            with open(mnt / "big", "rb") as f:
                f.seek(i * 4099)
                assert f.read(70000) == BIG[i * 4099 : i * 4099 + 70000]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(16)))


# -- big directories, many layers -------------------------------------------------------------


def compare(tmp_path: Path, layers: list[Dir], check: Callable[[Path], None]) -> None:
    kdir, udir = fresh_dir(tmp_path, "k"), fresh_dir(tmp_path, "u")
    k_lowers = build_stack(kdir, layers, kernel=True)
    u_lowers = build_stack(udir, layers, kernel=False)
    kmnt, umnt = fresh_dir(kdir, "mnt"), fresh_dir(udir, "mnt")
    with kernel_overlay(k_lowers, kmnt), unionfs_mount(u_lowers, umnt):
        assert diff_trees(drop_unstatable(snapshot(kmnt)), snapshot(umnt)) == []
        first = os.listdir(umnt / "big")
        assert sorted(first) == sorted(os.listdir(umnt / "big"))
        assert len(first) == len(set(first))
        check(umnt)


def test_large_merged_directory_lists_each_name_once(tmp_path: Path) -> None:
    pad = "n" * 200
    top = {f"{pad}{i:05}": b"t" for i in range(0, 3000, 2)}
    top.update({f"{pad}{i:05}": Whiteout("wh" if i % 2 else "chr") for i in range(1, 3000, 6)})
    bottom = {f"{pad}{i:05}": b"b" for i in range(3000)}
    compare(tmp_path, [tree({"big": top}), tree({"big": bottom})], lambda m: None)


def test_many_layers_merge_in_order(tmp_path: Path) -> None:
    # layer i adds file i, overrides "shared", and whites out file i+1 of the layer below
    count = 60
    layers = [
        tree({"big": {f"f{i}": b"%d" % i, "shared": b"%d" % i, f"f{i + 1}": Whiteout()}})
        for i in range(count)
    ]

    def check(mnt: Path) -> None:
        assert (mnt / "big/shared").read_bytes() == b"0"
        assert sorted(os.listdir(mnt / "big")) == ["f0", "shared"]

    compare(tmp_path, layers, check)


# -- a layer changed between two mounts ------------------------------------------------------


def _rewrite(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:  # in place: same inode, same size
        f.write(data)


def _replace_by_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _retarget(path: Path) -> None:
    path.unlink()
    path.symlink_to("elsewhere")


CHANGES: dict[str, Callable[[list[Path]], object]] = {
    "rewrite_in_place": lambda ls: _rewrite(ls[0] / "f", b"NEW!"),
    "chmod": lambda ls: os.chmod(ls[0] / "f", 0o600),
    "chmod_deep": lambda ls: os.chmod(ls[0] / "d/x", 0o600),  # no directory changes
    "chown": lambda ls: os.chown(ls[0] / "f", 1000, 1000),
    "setxattr": lambda ls: os.setxattr(ls[0] / "f", "user.new", b"1"),
    "add_file_in_subdir": lambda ls: (ls[0] / "d/new").write_bytes(b"n"),
    "remove_file_in_subdir": lambda ls: os.unlink(ls[0] / "d/x"),
    "replace_file_by_dir": lambda ls: _replace_by_dir(ls[0] / "f"),
    "rename": lambda ls: os.rename(ls[0] / "f", ls[0] / "g"),
    "retarget_symlink": lambda ls: _retarget(ls[0] / "s"),
    "whiteout_added": lambda ls: os.mknod(ls[0] / "below", stat.S_IFCHR, os.makedev(0, 0)),
    "dir_made_opaque": lambda ls: os.setxattr(ls[0] / "d", "trusted.overlay.opaque", b"y"),
    "bottom_truncated": lambda ls: os.truncate(ls[1] / "below", 0),
    "bottom_file_added": lambda ls: (ls[1] / "d/late").write_bytes(b"late"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_layer_changed_between_mounts_is_shown_as_it_is_now(tmp_path: Path, change: str) -> None:
    # kernel markers only, so that kernel overlayfs can mount the very same directories
    top = tree({"f": File(b"old!", xattrs={"user.a": b"1"}), "d": {"x": b"x"}, "s": Symlink(b"t")})
    bottom = tree({"below": b"below", "d": {"y": b"y"}})
    lowers = build_stack(fresh_dir(tmp_path, "layers"), [top, bottom], kernel=True)
    umnt, kmnt = fresh_dir(tmp_path, "umnt"), fresh_dir(tmp_path, "kmnt")
    with unionfs_mount(lowers, umnt, log=tmp_path / "first.log"):
        snapshot(umnt)  # the first mount indexes the layers
    CHANGES[change](lowers)
    with unionfs_mount(lowers, umnt, log=tmp_path / "second.log"), kernel_overlay(lowers, kmnt):
        assert diff_trees(drop_unstatable(snapshot(kmnt)), snapshot(umnt)) == []
