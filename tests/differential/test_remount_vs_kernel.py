"""``mount -o remount,...`` through the mount(8) helper, against kernel overlayfs: the
same commands succeed or fail on both, and leave a mount that refuses or takes writes alike.

mount(8) runs ``/usr/sbin/mount.fuse.unionfs`` (installed by ``./dev.sh setup``) for a
remount of a ``fuse.unionfs`` mount; kernel overlayfs takes the same command in mount(2).
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mountutil import kernel_overlay, mounts, unionfs_cmd, unionfs_mount
from patience import scaled

MOUNT_HELPER = Path("/usr/sbin/mount.fuse.unionfs")


def mount_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=scaled(60),
                          stdin=subprocess.DEVNULL, check=False)  # fmt: skip


def flags_of(mnt: Path) -> set[str]:
    """The per-mount flags and the superblock's ro/rw of the topmost mount at *mnt*."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        lines = [ln.split() for ln in f if ln.split()[4] == str(mnt)]
    fields = lines[-1]
    sb = fields[fields.index("-", 6) + 3].split(",")
    return set(fields[5].split(",")) | {"sb-" + w for w in sb if w in ("ro", "rw")}


def try_write(mnt: Path, name: str) -> int:
    """0, or the errno of creating *name* and of appending to the lower file ``f``."""
    try:
        (mnt / name).write_bytes(b"x")
        with open(mnt / "f", "ab") as f:
            f.write(b"+")
    except OSError as exc:
        return exc.errno or -1
    return 0


@contextmanager
def both(newdir: Callable[..., Path], upper: bool = True) -> Iterator[tuple[Path, Path]]:
    """A kernel overlay and a unionfs mount of the same two lowers (with an upper)."""
    with_helper()
    mounted = []
    for side in ("k", "u"):
        base = newdir(side)
        low, low2, mnt = base / "l", base / "l2", base / "m"
        for d in (low, low2, mnt):
            d.mkdir()
        (low / "f").write_bytes(b"f")
        up = work = None
        if upper:
            up, work = base / "up", base / "work"
            up.mkdir()
            work.mkdir()
        mounted.append((side, [low, low2], mnt, up, work))
    (_, kl, kmnt, kup, kwork), (_, ul, umnt, uup, uwork) = mounted
    with kernel_overlay(kl, kmnt, kup, kwork), unionfs_mount(ul, umnt, uup, uwork):
        yield kmnt, umnt


def with_helper() -> None:
    assert MOUNT_HELPER.exists(), f"{MOUNT_HELPER} is missing: run ./dev.sh setup"


def test_remount_read_only_and_back_through_the_helper(newdir: Callable[..., Path]) -> None:
    with both(newdir) as (kmnt, umnt):
        seen: dict[str, list[object]] = {"k": [], "u": []}
        for side, mnt in (("k", kmnt), ("u", umnt)):
            for opts in ("remount,ro", "remount,rw"):
                result = mount_cmd("-o", opts, str(mnt))
                seen[side].append((opts, result.returncode, "ro" in flags_of(mnt)))
                seen[side].append(try_write(mnt, f"new-{opts}"))
        assert seen["k"] == [("remount,ro", 0, True), errno.EROFS, ("remount,rw", 0, False), 0]
        assert seen["u"] == seen["k"]


def test_remount_read_only_is_busy_while_a_file_is_open_for_writing(
    newdir: Callable[..., Path],
) -> None:
    with both(newdir) as (kmnt, umnt):
        results = {}
        for side, mnt in (("k", kmnt), ("u", umnt)):
            with open(mnt / "f", "ab"):
                busy = mount_cmd("-o", "remount,ro", str(mnt))
            results[side] = (busy.returncode != 0, "ro" in flags_of(mnt))
        assert results["k"] == (True, False)
        assert results["u"] == results["k"]


def test_remount_changes_the_atime_flags_as_on_the_kernel(newdir: Callable[..., Path]) -> None:
    with both(newdir) as (kmnt, umnt):
        for opts in ("remount,noatime", "remount,strictatime,nodiratime", "remount,relatime"):
            got = {}
            for side, mnt in (("k", kmnt), ("u", umnt)):
                result = mount_cmd("-o", opts, str(mnt))
                assert result.returncode == 0, result.stderr
                got[side] = flags_of(mnt) & {"noatime", "relatime", "nodiratime"}
            assert got["u"] == got["k"], opts


def test_remount_read_write_of_a_mount_without_upper_fails(newdir: Callable[..., Path]) -> None:
    with both(newdir, upper=False) as (kmnt, umnt):
        results = {}
        for side, mnt in (("k", kmnt), ("u", umnt)):
            result = mount_cmd("-o", "remount,rw", str(mnt))
            results[side] = (result.returncode != 0, "sb-ro" in flags_of(mnt))
            if side == "u":
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1 and "upperdir" in lines[0], result.stderr
        assert results["k"] == (True, True)
        assert results["u"] == results["k"]


@pytest.mark.parametrize("opts", ["remount,ro", "remount,bogus,ro"])
def test_remount_of_what_is_not_mounted_fails_cleanly(
    newdir: Callable[..., Path], opts: str
) -> None:
    mnt = newdir("plain")
    before = [m for m in mounts() if m[0] == str(mnt)]
    got = subprocess.run(unionfs_cmd("mount", "-o", opts, str(mnt)), capture_output=True,
                         text=True, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    assert got.returncode != 0
    assert len(got.stderr.strip().splitlines()) == 1 and "Traceback" not in got.stderr
    assert "not mounted" in got.stderr
    assert [m for m in mounts() if m[0] == str(mnt)] == before
