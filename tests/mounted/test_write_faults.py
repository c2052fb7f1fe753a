"""Bad input and faults: a full upper, an unwritable workdir, symlinks pointing out of the
layers, and markers unionfs does not know. The mount must answer with an errno (as kernel
overlayfs does), never leave half a copy, never follow a symlink out of a layer, and never
crash: ``unionfs_mount`` fails the test on any ERROR or Traceback in the daemon's log.
"""

from __future__ import annotations

import contextlib
import errno
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
    build_stack,
    fresh_dir,
    is_mounted,
    kernel_overlay,
    tree,
    unionfs_cmd,
    unionfs_mount,
)
from patience import scaled
from treecmp import diff_trees, drop_unstatable, snapshot
from writeutil import (
    Mounted,
    Outcome,
    layer_state,
    outcome,
    remount_ro,
    tmpfs,
    upper_entries,
    writable,
)

MiB = 1 << 20
BIG = bytes(range(256)) * (16 * MiB // 256)


# -- a full upper filesystem ---------------------------------------------------------------


@contextlib.contextmanager
def on_small_upper(tmp_path: Path, kernel: bool) -> Iterator[Mounted]:
    """The stack {big: 16 MiB, small, d/} with upper and workdir on a 4 MiB tmpfs."""
    small = fresh_dir(tmp_path, "tmpfs")
    layers = [tree({"big": BIG, "small": b"small", "d": {"x": b"x"}})]
    with tmpfs(small, "4m"), writable(tmp_path, layers, kernel, upper_base=small) as m:
        yield m


def copy_up_too_big(m: Mounted) -> list[Outcome]:
    def append() -> object:
        with open(m.path("big"), "ab") as f:
            f.write(b"!")
        return None

    out = [outcome(append)]
    out.append(outcome(lambda: os.stat(m.path("big")).st_size))
    out.append(outcome(lambda: m.path("big").read_bytes() == BIG))
    out.append(outcome(lambda: m.path("d/new").write_bytes(b"fits")))
    out.append(outcome(lambda: m.path("small").read_bytes()))
    out.append(outcome(lambda: sorted(os.listdir(m.mnt))))
    return out


def test_copy_up_that_does_not_fit_gives_enospc_and_leaves_nothing(tmp_path: Path) -> None:
    with on_small_upper(tmp_path, kernel=False) as m:
        results = copy_up_too_big(m)
        assert results[0] == ("err", "ENOSPC")
        assert results[1:] == [
            ("ok", len(BIG)),
            ("ok", True),
            ("ok", 4),
            ("ok", b"small"),
            ("ok", ["big", "d", "small"]),
        ]
        assert b"big" not in upper_entries(m.upper)
        assert os.listdir(m.work / "work") == []
        assert os.statvfs(m.upper).f_bfree > 0  # the partial copy was removed


def test_copy_up_that_does_not_fit_fails_as_on_the_kernel(tmp_path: Path) -> None:
    results = {}
    for kernel in (True, False):
        with on_small_upper(tmp_path, kernel) as m:
            results[kernel] = copy_up_too_big(m), upper_entries(m.upper)
    assert results[False] == results[True]


def test_writing_past_the_free_space_reports_enospc(tmp_path: Path) -> None:
    """With the write-back cache the error may come at write, fsync or close: not never."""
    errors = {}
    for kernel in (True, False):
        with on_small_upper(tmp_path, kernel) as m:
            seen = []
            try:
                with open(m.path("d/fill"), "wb") as f:
                    for _ in range(8):
                        seen.append(outcome(lambda f=f: f.write(b"\xaa" * MiB)))
                    seen.append(outcome(lambda f=f: os.fsync(f.fileno())))
            except OSError as exc:
                seen.append(("err", errno.errorcode[exc.errno or 0]))
            errors[kernel] = {o for o in seen if o[0] == "err"}
            assert m.path("small").read_bytes() == b"small"
    assert errors[True] == {("err", "ENOSPC")}
    assert errors[False] == {("err", "ENOSPC")}


# -- an unwritable workdir -----------------------------------------------------------------


def refused(tmp_path: Path, upper: Path, work: Path) -> subprocess.CompletedProcess[str]:
    lower = fresh_dir(tmp_path, "lower")
    mnt = fresh_dir(tmp_path, "mnt")
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    try:
        return subprocess.run(
            unionfs_cmd("mount", "-f", "-o", opts, str(mnt)),
            capture_output=True, text=True, timeout=scaled(30), check=False,
        )  # fmt: skip
    finally:
        assert not is_mounted(mnt), "mounted over an unwritable workdir"


def assert_one_clear_line(result: subprocess.CompletedProcess[str], word: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert word in lines[0] and "Traceback" not in result.stderr, lines[0]


def test_read_only_bind_mounted_workdir_is_refused(tmp_path: Path) -> None:
    upper = fresh_dir(tmp_path, "upper")
    source = fresh_dir(tmp_path, "worksrc")
    work = fresh_dir(tmp_path, "work")
    subprocess.run(["mount", "--bind", str(source), str(work)], check=True)
    try:
        remount_ro_bind(work)
        assert_one_clear_line(refused(tmp_path, upper, work), "workdir")
    finally:
        subprocess.run(["umount", str(work)], check=True)


def remount_ro_bind(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], check=True)


def test_workdir_on_a_read_only_tmpfs_is_refused(tmp_path: Path) -> None:
    small = fresh_dir(tmp_path, "tmpfs")
    with tmpfs(small, "1m"):
        (small / "upper").mkdir()
        (small / "work").mkdir()
        remount_ro(small)
        result = refused(tmp_path, small / "upper", small / "work")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert_one_clear_line(result, "not writable")
        assert "upperdir" in lines[0] or "workdir" in lines[0]


# -- symlinks out of a layer ---------------------------------------------------------------


def outside_dir(tmp_path: Path, label: str) -> Path:
    outside = fresh_dir(tmp_path, f"outside-{label}")
    (outside / "precious").write_bytes(b"keep me")
    os.mkdir(outside / "sub")
    return outside


def on_the_link(m: Mounted) -> list[Outcome]:
    """Operations on a lower symlink that points out of the stack: on the link itself."""
    d = m.path("d")
    return [
        outcome(lambda: os.chown(d, 1000, 1000, follow_symlinks=False)),
        outcome(lambda: os.utime(d, ns=(1, 2), follow_symlinks=False)),
        outcome(lambda: os.setxattr(d, "user.x", b"1", follow_symlinks=False)),
        outcome(lambda: (os.lstat(d).st_uid, os.path.basename(os.readlink(d))[:8])),
        outcome(lambda: os.link(d, m.path("d2"), follow_symlinks=False)),
        outcome(lambda: os.rename(d, m.path("e"))),
        outcome(lambda: os.rename(m.path("e"), m.path("sub/d"))),
        outcome(lambda: os.unlink(m.path("d2"))),
        outcome(lambda: os.open(m.path("sub/d"), os.O_WRONLY | os.O_NOFOLLOW)),
    ]


def through_the_link(m: Mounted) -> list[Outcome]:
    """The kernel's path walk follows the link (not the filesystem): writes land outside,
    on kernel overlayfs as on unionfs."""
    d = m.path("sub/d")
    return [
        outcome(lambda: (d / "new").write_bytes(b"written through the link")),
        outcome(lambda: os.mkdir(d / "x")),
        outcome(lambda: os.chmod(d, 0o700)),
    ]


def visible(outside: Path) -> dict[str, object]:
    return {
        name: (stat.S_IMODE(os.lstat(outside / name).st_mode), sorted(os.listdir(outside)))
        for name in os.listdir(outside)
    }


def test_copy_up_never_follows_a_symlink_out_of_a_layer(tmp_path: Path) -> None:
    results = {}
    outsides = {}
    for kernel in (True, False):
        outside = outside_dir(tmp_path, "k" if kernel else "u")
        before = layer_state(outside)
        layers = [Dir({b"d": Symlink(os.fsencode(outside)), b"sub": Dir()})]
        with writable(tmp_path, layers, kernel=kernel) as m:
            results[kernel] = on_the_link(m)
            assert layer_state(outside) == before, "a change went through the symlink"
            results[kernel] += through_the_link(m)
        outsides[kernel] = visible(outside), stat.S_IMODE(os.lstat(outside).st_mode)
        upper_link = m.upper / "sub" / "d"
        assert os.readlink(upper_link) == os.fsdecode(outside)
        assert os.lstat(upper_link).st_uid == 1000
        assert upper_entries(m.upper) == [b"d", b"sub", b"sub/d"]  # d: a whiteout
    assert results[False] == results[True]
    assert outsides[False] == outsides[True]


def test_a_workdir_work_symlink_is_not_followed(tmp_path: Path) -> None:
    """The kernel replaces WORKDIR/work when it is not a directory; what it pointed to stays."""
    outside = outside_dir(tmp_path, "work")
    before = layer_state(outside)
    lowers = build_stack(fresh_dir(tmp_path, "s"), [tree({"f": b"lower"})], kernel=True)
    upper, work, mnt = (fresh_dir(tmp_path, n) for n in ("upper", "work", "mnt"))
    os.symlink(outside, work / "work")
    with unionfs_mount(lowers, mnt, upper, work):
        with open(mnt / "f", "ab") as f:
            f.write(b"+")
        os.unlink(mnt / "f")
    assert layer_state(outside) == before
    assert sorted(os.listdir(outside)) == ["precious", "sub"]


# -- markers unionfs does not know --------------------------------------------------------


def odd_upper(root: Path) -> None:
    """An upper holding a real device, a directory and a file with overlay xattrs unionfs
    does not use, and an opaque xattr with a value other than "y"."""
    root.mkdir()
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "loop", stat.S_IFBLK | 0o600, os.makedev(7, 200))
    os.mkdir(root / "odd")
    os.setxattr(root / "odd", "trusted.overlay.foo", b"unknown")
    os.setxattr(root / "odd", "trusted.overlay.opaque", b"x")  # not "y": not opaque
    (root / "odd" / "up").write_bytes(b"up")
    (root / "file").write_bytes(b"upper file")
    os.setxattr(root / "file", "trusted.overlay.origin", b"\x00garbage\xff")
    os.setxattr(root / "file", "trusted.overlay.impure", b"y")


MARKER_LOWER = [tree({"odd": {"low": b"low"}, "file": b"lower", "other": b"o"})]


def marker_steps(mnt: Path) -> list[Outcome]:
    return [
        outcome(lambda: sorted(os.listdir(mnt / "odd"))),
        outcome(lambda: (mnt / "file").read_bytes()),
        outcome(lambda: sorted(os.listxattr(mnt / "odd"))),
        outcome(lambda: os.getxattr(mnt / "file", "trusted.overlay.origin")),
        outcome(lambda: stat.S_ISCHR(os.lstat(mnt / "null").st_mode)),
        outcome(lambda: os.chmod(mnt / "odd", 0o700)),
        outcome(lambda: os.setxattr(mnt / "odd", "user.k", b"v")),
        outcome(lambda: os.unlink(mnt / "null")),
        outcome(lambda: os.rename(mnt / "file", mnt / "odd" / "file")),
        outcome(lambda: os.unlink(mnt / "odd" / "low")),
        outcome(lambda: sorted(os.listdir(mnt / "odd"))),
    ]


def test_unknown_markers_in_the_upper_are_handled_as_the_kernel_does(tmp_path: Path) -> None:
    views = {}
    results = {}
    for kernel in (True, False):
        base = fresh_dir(tmp_path, "k" if kernel else "u")
        lowers = build_stack(base, MARKER_LOWER, kernel=True)
        odd_upper(base / "upper")
        work, mnt = fresh_dir(base, "work"), fresh_dir(base, "mnt")
        mount: Callable[..., contextlib.AbstractContextManager[Path]]
        mount = kernel_overlay if kernel else unionfs_mount
        with mount(lowers, mnt, base / "upper", work):
            before = drop_unstatable(snapshot(mnt))
            results[kernel] = marker_steps(mnt)
            views[kernel] = (before, drop_unstatable(snapshot(mnt)))
    assert results[False] == results[True]
    for i in (0, 1):
        problems = diff_trees(views[True][i], views[False][i])
        assert not problems, "\n".join(problems)


@pytest.mark.parametrize("value", [b"", b"yy", b"\x00" * 300])
def test_odd_opaque_values_in_a_lower_layer(tmp_path: Path, value: bytes) -> None:
    """Only the value "y" makes a directory opaque, for the kernel and for unionfs."""
    layers = [Dir({b"d": Dir({b"top": File(b"1")})}), tree({"d": {"below": b"2"}})]
    views = {}
    for kernel in (True, False):
        base = fresh_dir(tmp_path, "k" if kernel else "u")
        lowers = build_stack(base, layers, kernel=True)
        os.setxattr(lowers[0] / "d", "trusted.overlay.opaque", value)
        upper, work, mnt = (fresh_dir(base, n) for n in ("upper", "work", "mnt"))
        mount: Callable[..., contextlib.AbstractContextManager[Path]]
        mount = kernel_overlay if kernel else unionfs_mount
        with mount(lowers, mnt, upper, work):
            (mnt / "d" / "new").write_bytes(b"n")
            views[kernel] = drop_unstatable(snapshot(mnt))
    problems = diff_trees(views[True], views[False])
    assert not problems, "\n".join(problems)
