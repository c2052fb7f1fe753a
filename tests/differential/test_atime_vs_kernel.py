"""Access times through the mount against kernel overlayfs with the same atime flags.

The kernel's FUSE ignores a mount's atime flags (its inodes are S_NOATIME), so unionfs
applies them itself; kernel overlayfs updates an upper entry's atime by the overlay mount's
flags alone (its clone of the upper mount has none) and never changes a ctime doing so.
Each case reads an upper file whose atime is older than its mtime, one whose atime is newer
than its mtime and ctime (only strictatime updates that one), and lists an upper directory
whose atime is older than its mtime.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mountutil import kernel_overlay, unionfs_mount
from patience import Deadline

HOUR = 3600 * 10**9
ENTRIES = ("old", "recent", "dir")
Times = dict[str, tuple[int, int]]  # entry -> (atime, ctime)


def _layers(base: Path) -> tuple[Path, Path, Path, Path, Path]:
    lower, lower2, upper, work, mnt = (base / n for n in ("l", "l2", "up", "work", "m"))
    for d in (lower, lower2, upper / "dir", work, mnt):
        d.mkdir(parents=True)
    for name in ("old", "recent"):
        (upper / name).write_bytes(b"data")
    (upper / "dir" / "x").write_bytes(b"x")
    return lower, lower2, upper, work, mnt


def _age(upper: Path) -> None:
    """Set the times just before the reads: no other access may come between."""
    now = time.time_ns()
    os.utime(upper / "old", ns=(now - 2 * HOUR, now - HOUR))
    os.utime(upper / "dir", ns=(now - 2 * HOUR, now - HOUR))
    # newer than its mtime and its ctime (which utime just set to now), and under a day old
    os.utime(upper / "recent", ns=(now + 60 * 10**9, now - HOUR))


def _times(upper: Path) -> Times:
    return {n: (os.lstat(upper / n).st_atime_ns, os.lstat(upper / n).st_ctime_ns) for n in ENTRIES}


def _read_all(mnt: Path) -> None:
    for name in ("old", "recent"):
        fd = os.open(mnt / name, os.O_RDONLY)
        try:
            os.read(fd, 10)
        finally:
            os.close(fd)
    os.listdir(mnt / "dir")


def _changes(before: Times, after: Times) -> dict[str, str]:
    found = {}
    for name in ENTRIES:
        atime = "updated" if after[name][0] != before[name][0] else "same"
        ctime = ", ctime changed" if after[name][1] != before[name][1] else ""
        found[name] = atime + ctime
    return found


@contextmanager
def _mounted(kind: str, base: Path, opts: str) -> Iterator[tuple[Path, Path]]:
    lower, lower2, upper, work, mnt = _layers(base)
    extra = [opts] if opts else []
    if kind == "kernel":
        with kernel_overlay([lower, lower2], mnt, upper, work, opts=opts):
            yield mnt, upper
    else:
        with unionfs_mount([lower, lower2], mnt, upper, work, extra_opts=extra):
            yield mnt, upper


def _observe(kind: str, base: Path, opts: str) -> dict[str, str]:
    with _mounted(kind, base, opts) as (mnt, upper):
        _age(upper)
        before = _times(upper)
        _read_all(mnt)
        return _changes(before, _times(upper))


def _shown_flags(mnt: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        fields = [ln.split() for ln in f if ln.split()[4] == str(mnt)][-1]
    return sorted(w for w in fields[5].split(",") if "atime" in w)


@pytest.mark.parametrize(
    "opts",
    ["", "relatime", "noatime", "strictatime", "nodiratime", "atime", "strictatime,nodiratime",
     "noatime,strictatime", "strictatime,nostrictatime", "norelatime"],
)  # fmt: skip
def test_atime_flags_act_as_on_the_kernel(newdir: Callable[..., Path], opts: str) -> None:
    kernel = _observe("kernel", newdir("k"), opts)
    ours = _observe("unionfs", newdir("u"), opts)
    assert ours == kernel


@pytest.mark.parametrize("opts", ["", "noatime", "strictatime", "nodiratime,noatime"])
def test_mountinfo_shows_the_atime_flags_as_for_the_kernel(
    newdir: Callable[..., Path], opts: str
) -> None:
    shown = {}
    for kind in ("kernel", "unionfs"):
        with _mounted(kind, newdir(kind), opts) as (mnt, _upper):
            deadline = Deadline(60)  # the daemon sets them once it serves
            while (got := _shown_flags(mnt)) != shown.get("kernel", got):
                assert not deadline.expired(), got
                time.sleep(0.05)
            shown[kind] = got
    assert shown["unionfs"] == shown["kernel"]


@pytest.mark.parametrize("change", ["remount,noatime", "remount,strictatime", "remount,ro"])
def test_a_remount_changes_how_atimes_follow(newdir: Callable[..., Path], change: str) -> None:
    """mount -i: the kernel's own remount, no helper; the daemon follows the new flags."""
    seen = {}
    for kind in ("kernel", "unionfs"):
        with _mounted(kind, newdir(kind), "") as (mnt, upper):
            result = subprocess.run(["mount", "-i", "-o", change, str(mnt)], check=False,
                                    capture_output=True, text=True)  # fmt: skip
            assert result.returncode == 0, result.stderr
            deadline = Deadline(60)
            while True:  # the daemon hears of the change from its mountinfo thread
                _age(upper)
                before = _times(upper)
                _read_all(mnt)
                seen[kind] = _changes(before, _times(upper))
                if kind == "kernel" or seen[kind] == seen["kernel"]:
                    break
                assert not deadline.expired(), seen
                time.sleep(0.1)
    assert seen["unionfs"] == seen["kernel"]
