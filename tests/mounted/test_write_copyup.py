"""Copy-up and markers on a real mount: what lands in the upper, and what never changes.

A copied-up file keeps its data, mode, owner, mtime, xattrs and inode number; the lower
layers are never modified; removals leave the kernel's markers (char device 0/0, the
``trusted.overlay.opaque`` xattr, as root) and nothing stray. Where the kernel is the
reference, the same steps run on kernel overlayfs and the two uppers must read alike.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from layers import WHITEOUT_CHR, Opaque, read_tree
from mountutil import File, Symlink, build_stack, fresh_dir, kernel_overlay, tree, unionfs_mount
from writeutil import Mounted, kernel_view, layer_state, outcome, upper_entries, writable

MTIME_NS = 1_300_000_000_123_456_789

XATTRS = {"user.one": b"1", "user.two": b"2" * 300, "trusted.t": b"t"}
TOP = tree(
    {
        "f": File(b"lower data\n" * 500, mode=0o4750, uid=1000, gid=65534, xattrs=XATTRS),
        "d": {"a": b"a", "sub": {"x": b"x"}},
        "s": Symlink(b"f"),
        "both": {"top": b"top"},
    }
)
BOTTOM = tree({"both": {"bottom": b"bottom"}, "d": {"b": b"b"}, "e": {"deep": {"z": b"z"}}})
LAYERS = [TOP, BOTTOM]


def stamp(lowers: list[Path]) -> None:
    """A fixed mtime on the lower files, so a copy can be told from a fresh file."""
    for rel in ("f", "d/a", "d", "both"):
        os.utime(lowers[0] / rel, ns=(MTIME_NS, MTIME_NS))


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Mounted]:
    with writable(tmp_path, LAYERS, prepare=stamp) as m:
        yield m


def test_copy_up_keeps_data_mode_owner_mtime_and_xattrs(mounted: Mounted) -> None:
    path = mounted.path("f")
    with open(path, "ab"):
        pass  # opened for writing: copied up, nothing changed
    up = mounted.upper / "f"
    assert up.exists(), "opening for writing did not copy up"
    for where in (path, up):
        st = os.lstat(where)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4750, 1000, 65534), where
        assert st.st_mtime_ns == MTIME_NS, where
        assert where.read_bytes() == b"lower data\n" * 500
        assert os.getxattr(where, "user.one") == b"1"
        assert os.getxattr(where, "user.two") == b"2" * 300
        assert os.getxattr(where, "trusted.t") == b"t"


def test_copy_up_of_parents_keeps_their_mtime(mounted: Mounted) -> None:
    with open(mounted.path("d/a"), "ab") as f:
        f.write(b"+")
    assert os.lstat(mounted.upper / "d").st_mtime_ns == MTIME_NS
    assert os.lstat(mounted.path("d")).st_mtime_ns == MTIME_NS
    assert mounted.path("d/a").read_bytes() == b"a+"


def test_copy_up_keeps_the_inode_number(mounted: Mounted) -> None:
    before = {rel: os.lstat(mounted.path(rel)).st_ino for rel in ("f", "d/a", "d", "s", "both")}
    with open(mounted.path("f"), "ab"):
        pass
    os.chmod(mounted.path("d/a"), 0o600)
    os.chown(mounted.path("s"), 1000, 1000, follow_symlinks=False)
    os.setxattr(mounted.path("both"), "user.x", b"1")
    with open(mounted.path("f"), "ab") as f:
        f.write(b"more")
    after = {rel: os.lstat(mounted.path(rel)).st_ino for rel in before}
    assert after == before
    assert {e.name: e.inode() for e in os.scandir(mounted.mnt) if e.name in ("f", "d")} == {
        "f": before["f"],
        "d": before["d"],
    }


KEPT = ("f", "d", "d/a", "d/b", "d/sub", "d/sub/x", "s", "both", "both/top", "both/bottom",
        "e2", "e2/deep", "e2/deep/z")  # fmt: skip


def _change(mnt: Path) -> None:
    with open(mnt / "f", "ab") as f:
        f.write(b"+")
    os.chmod(mnt / "d" / "a", 0o600)
    os.mkdir(mnt / "both" / "new")
    os.chown(mnt / "s", 1000, 1000, follow_symlinks=False)
    os.rename(mnt / "e", mnt / "e2")  # a merged dir moved: copied up, with a redirect


def _numbers(mnt: Path) -> dict[str, int]:
    return {rel: os.lstat(mnt / rel).st_ino for rel in KEPT}


def test_inode_numbers_are_the_kernels_and_survive_a_remount(tmp_path: Path) -> None:
    """With every layer on one filesystem, an entry shows the inode number kernel
    overlayfs shows over the same lowers (a lower entry its own, a copied-up one its
    lower's), and unmounting and mounting again keeps every number."""
    lowers = build_stack(fresh_dir(tmp_path, "l"), LAYERS, kernel=True)
    sides = {}
    for side in ("k", "u"):
        d = fresh_dir(tmp_path, side)
        for sub in ("upper", "work", "mnt"):
            (d / sub).mkdir()
        sides[side] = d
    k, u = sides["k"], sides["u"]
    with kernel_overlay(lowers, k / "mnt", k / "upper", k / "work", "redirect_dir=on"):
        _change(k / "mnt")
        kernel = _numbers(k / "mnt")
    with unionfs_mount(lowers, u / "mnt", u / "upper", u / "work"):
        _change(u / "mnt")
        ours = _numbers(u / "mnt")
    assert ours == kernel
    with unionfs_mount(lowers, u / "mnt", u / "upper", u / "work"):
        assert _numbers(u / "mnt") == ours


def test_a_busy_mount_never_modifies_the_lower_layers(mounted: Mounted) -> None:
    before = [layer_state(lower) for lower in mounted.lowers]
    m = mounted.path
    with open(m("f"), "r+b") as f:
        f.write(b"overwrite")
        f.truncate(3)
    os.chmod(m("d"), 0o700)
    os.chown(m("d/a"), 1000, 1000)
    os.utime(m("both/bottom"), ns=(1, 2))
    os.setxattr(m("e/deep"), "user.new", b"v")
    os.removexattr(m("f"), "user.one")
    os.truncate(m("d/b"), 0)
    os.rename(m("d/sub/x"), m("e/x"))
    os.unlink(m("both/top"))
    os.rmdir(m("d/sub"))
    os.link(m("e/deep/z"), m("z2"))
    os.symlink("target", m("both/s"))
    os.mkdir(m("d/sub"))
    with open(m("e/deep/z"), "ab") as f:
        f.write(b"z")
    os.unlink(m("s"))
    assert [layer_state(lower) for lower in mounted.lowers] == before


def test_unlink_leaves_a_char_device_0_0(mounted: Mounted) -> None:
    os.unlink(mounted.path("d/a"))
    st = os.lstat(mounted.upper / "d" / "a")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert sorted(os.listdir(mounted.path("d"))) == ["b", "sub"]


def test_mkdir_over_a_whiteout_makes_an_opaque_dir(mounted: Mounted) -> None:
    os.unlink(mounted.path("d/sub/x"))
    os.rmdir(mounted.path("d/sub"))
    os.mkdir(mounted.path("d/sub"))
    assert os.listdir(mounted.path("d/sub")) == []
    assert os.getxattr(mounted.upper / "d" / "sub", "trusted.overlay.opaque") == b"y"
    os.unlink(mounted.path("d/b"))
    os.unlink(mounted.path("d/a"))
    os.rmdir(mounted.path("d/sub"))
    os.rmdir(mounted.path("d"))
    os.mkdir(mounted.path("d"))
    assert os.listdir(mounted.path("d")) == []
    assert read_tree(mounted.upper)["d/"] == Opaque({})


def test_rmdir_of_a_merged_dir_holding_only_whiteouts(mounted: Mounted) -> None:
    os.unlink(mounted.path("both/top"))
    with pytest.raises(OSError) as caught:
        os.rmdir(mounted.path("both"))
    assert caught.value.errno == errno.ENOTEMPTY
    os.unlink(mounted.path("both/bottom"))
    os.rmdir(mounted.path("both"))
    assert not os.path.lexists(mounted.path("both"))
    assert read_tree(mounted.upper)["both"] == WHITEOUT_CHR
    assert os.listdir(mounted.work / "work") == []


def test_rmdir_of_a_nonempty_merged_dir_is_enotempty(mounted: Mounted) -> None:
    for rel in ("both", "d", "e"):
        with pytest.raises(OSError) as caught:
            os.rmdir(mounted.path(rel))
        assert caught.value.errno == errno.ENOTEMPTY, rel
    assert upper_entries(mounted.upper) == []


def test_no_stray_whiteouts_in_upper_only_and_opaque_dirs(mounted: Mounted) -> None:
    os.mkdir(mounted.path("new"))
    mounted.path("new/f").write_bytes(b"1")
    os.mkdir(mounted.path("new/sub"))
    os.unlink(mounted.path("new/f"))
    os.rmdir(mounted.path("new/sub"))
    assert upper_entries(mounted.upper) == [b"new"]
    os.rename(mounted.path("new"), mounted.path("moved"))
    os.rmdir(mounted.path("moved"))
    assert upper_entries(mounted.upper) == []
    # inside an opaque directory nothing below shows, so nothing needs hiding
    os.unlink(mounted.path("e/deep/z"))
    os.rmdir(mounted.path("e/deep"))
    os.mkdir(mounted.path("e/deep"))
    mounted.path("e/deep/z").write_bytes(b"new z")
    os.unlink(mounted.path("e/deep/z"))
    assert os.listdir(mounted.upper / "e" / "deep") == []


# -- the same steps on kernel overlayfs leave the same upper -------------------------------

Steps = Callable[[Mounted], None]


def _remove_and_recreate(m: Mounted) -> None:
    os.unlink(m.path("d/a"))
    os.unlink(m.path("d/b"))
    os.unlink(m.path("d/sub/x"))
    os.rmdir(m.path("d/sub"))
    os.rmdir(m.path("d"))
    os.mkdir(m.path("d"))
    m.path("d/a").write_bytes(b"again")
    os.mkdir(m.path("both/new"))
    os.unlink(m.path("both/bottom"))


def _renames(m: Mounted) -> None:
    os.rename(m.path("d/a"), m.path("e/a"))
    os.rename(m.path("f"), m.path("both/top"))
    os.mkdir(m.path("n"))
    os.rename(m.path("n"), m.path("both/n"))
    os.unlink(m.path("s"))
    os.symlink("elsewhere", m.path("s"))


def _attributes(m: Mounted) -> None:
    os.chmod(m.path("e/deep"), 0o711)
    os.setxattr(m.path("d/sub/x"), "user.k", b"v")
    os.truncate(m.path("both/top"), 1)
    os.link(m.path("d/b"), m.path("b2"))


def both_ways(tmp_path: Path, steps: Steps) -> dict[str, tuple[object, object]]:
    """For kernel overlayfs and unionfs: (the upper as read_tree shows it, what kernel
    overlayfs shows over that upper) after *steps*."""
    out = {}
    for side in ("kernel", "unionfs"):
        with writable(tmp_path, LAYERS, kernel=side == "kernel", prepare=stamp) as m:
            steps(m)
        out[side] = (read_tree(m.upper), kernel_view(tmp_path, m.lowers, m.upper))
    return out


STEPS = [_remove_and_recreate, _renames, _attributes]


@pytest.mark.parametrize("steps", STEPS)
def test_kernel_shows_the_same_over_both_uppers(tmp_path: Path, steps: Steps) -> None:
    result = both_ways(tmp_path, steps)
    assert result["unionfs"][1] == result["kernel"][1]


@pytest.mark.parametrize("steps", STEPS)
def test_upper_holds_what_the_kernel_upper_holds(tmp_path: Path, steps: Steps) -> None:
    """Markers included: e.g. the kernel makes a directory moved into a merged directory
    opaque (ovl_rename sets it whenever the new parent is merged)."""
    result = both_ways(tmp_path, steps)
    assert result["unionfs"][0] == result["kernel"][0]


def test_copy_up_of_a_symlink_copies_the_link(mounted: Mounted) -> None:
    os.chown(mounted.path("s"), 1000, 1000, follow_symlinks=False)
    assert os.readlink(mounted.upper / "s") == "f"
    assert os.lstat(mounted.upper / "s").st_uid == 1000
    assert os.lstat(mounted.path("f")).st_gid == 65534  # the target was not changed ...
    assert not (mounted.upper / "f").exists()  # ... nor copied up


def held_descriptor_steps(m: Mounted) -> list[object]:
    """A read-only descriptor opened before the copy-up stays open while the copied-up
    file is unlinked and then changed through its own descriptor."""
    before = [layer_state(lower) for lower in m.lowers]
    held = os.open(m.path("d/a"), os.O_RDONLY)
    fd = os.open(m.path("d/a"), os.O_RDWR)
    out: list[object] = []
    try:
        os.unlink(m.path("d/a"))
        for call in (
            lambda: os.fchmod(fd, 0o600),
            lambda: os.fchown(fd, 1000, 1000),
            lambda: os.ftruncate(fd, 1),
            lambda: os.pwrite(fd, b"after", 10),
            lambda: os.utime(fd, ns=(1, 2)),
        ):
            out.append(outcome(call))
        st = os.fstat(fd)
        out.append((oct(st.st_mode), st.st_uid, st.st_size, st.st_nlink))
        out.append(outcome(lambda: os.pread(held, 20, 0)))
    finally:
        os.close(fd)
        os.close(held)
    out.append([layer_state(lower) for lower in m.lowers] == before)
    return out


def test_descriptors_opened_before_copy_up_never_change_the_lower(tmp_path: Path) -> None:
    with writable(tmp_path, LAYERS, kernel=True) as m:
        expected = held_descriptor_steps(m)
    with writable(tmp_path, LAYERS) as m:
        got = held_descriptor_steps(m)
        assert got[-1] is True, f"the lower layer was modified: {got}"
        assert got == expected
