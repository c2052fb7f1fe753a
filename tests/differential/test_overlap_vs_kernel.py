"""Overlapping layers against kernel overlayfs: the same layouts are refused, with the same
errno, or mounted, on both.

A refusal from unionfs is one line on stderr naming the conflict and its errno, a non-zero
exit, no traceback and nothing left mounted. The kernel's errno is read from mount(8)'s
message. "Another live mount" is a kernel overlay mount on the kernel's side and a unionfs
mount on ours (the kernel's in-use flag and our daemons' marks); one case crosses them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from mountutil import (
    force_unmount,
    kernel_overlay,
    mount_options,
    mounts,
    unionfs_cmd,
    unionfs_mount,
)
from patience import Deadline, scaled

from unionfs import layercheck

# mount(8)'s words for the errnos of a refused overlay mount
KERNEL_WORDS = {
    "Too many levels of symbolic links": "ELOOP",
    "already mounted": "EBUSY",
    "Device or resource busy": "EBUSY",
    "Stale file handle": "ESTALE",
    "wrong fs type, bad option": "EINVAL",
}
ERRNOS = ("ELOOP", "EBUSY", "ESTALE", "EINVAL")


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=scaled(120), check=False,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def mounted_at(mnt: Path) -> int:
    return sum(1 for point, _ in mounts() if point == str(mnt))


def kernel_answer(opts: str, mnt: Path) -> str:
    """"mounted", or the errno name of the kernel's refusal."""
    result = run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)])
    if result.returncode == 0:
        run(["umount", str(mnt)])
        return "mounted"
    found = [name for words, name in KERNEL_WORDS.items() if words in result.stderr]
    assert found, result.stderr
    return found[0]


def our_answer(opts: str, mnt: Path) -> str:
    """"mounted", or the errno our one-line refusal names; checks the refusal is clean."""
    before = mounted_at(mnt)
    result = run(unionfs_cmd("mount", "-o", opts, str(mnt)))
    if result.returncode == 0:
        force_unmount(mnt)
        return "mounted"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert mounted_at(mnt) == before, "a refused mount left something mounted"
    named = [name for name in ERRNOS if f"({name}" in lines[0]]
    assert named, lines[0]
    return named[0]


class Side:
    """One side's directories: ``d(name)`` makes (and returns) ``base/name``."""

    def __init__(self, base: Path, kernel: bool) -> None:
        self.base = base
        self.kernel = kernel
        self.mnt = self.d("mnt")

    def d(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def answer(self, lowers: list[Path], upper: Path | None = None, work: Path | None = None,
               extra: str = "") -> str:  # fmt: skip
        opts = mount_options(lowers, upper, work, [extra] if extra else [])
        return kernel_answer(opts, self.mnt) if self.kernel else our_answer(opts, self.mnt)

    @contextmanager
    def live(self, lowers: list[Path], upper: Path, work: Path) -> Iterator[None]:
        """Another live mount of these layers (kernel overlay or unionfs, by side)."""
        mnt = self.d("other-mnt")
        if self.kernel:
            with kernel_overlay(lowers, mnt, upper, work):
                yield
        else:
            with unionfs_mount(lowers, mnt, upper, work, log=self.base / "other.log"):
                yield


Case = Callable[[Side], str]


def workdir_as_lower(s: Side) -> str:
    return s.answer([s.d("w"), s.d("l")], s.d("u"), s.d("w"))


def same_lower_twice(s: Side) -> str:
    return s.answer([s.d("l"), s.d("l")], s.d("u"), s.d("w"))


def lower_inside_lower(s: Side) -> str:
    return s.answer([s.d("l/sub"), s.d("l")], s.d("u"), s.d("w"))


def lower_containing_lower(s: Side) -> str:
    return s.answer([s.d("l"), s.d("l/sub")], s.d("u"), s.d("w"))


def lower_inside_upper(s: Side) -> str:
    return s.answer([s.d("u/in"), s.d("l")], s.d("u"), s.d("w"))


def lower_inside_workdir(s: Side) -> str:
    return s.answer([s.d("w/in"), s.d("l")], s.d("u"), s.d("w"))


def upper_on_a_unionfs_mount(s: Side) -> str:
    host = s.d("host")
    (s.d("host-low") / "u").mkdir()
    (s.base / "host-low" / "w").mkdir()
    with unionfs_mount([s.base / "host-low"], host, s.d("host-up"), s.d("host-work"),
                       log=s.base / "host.log"):  # fmt: skip
        return s.answer([s.d("l"), s.d("l2")], host / "u", host / "w")


def _in_other_mounts(s: Side, index: str, lower: str) -> str:
    with s.live([s.d("ol"), s.d("ol2")], s.d("ou"), s.d("ow")):
        return s.answer([s.d(lower), s.d("l")], s.d("u"), s.d("w"), index)


def lower_inside_another_mounts_upper(s: Side) -> str:
    return _in_other_mounts(s, "index=off", "ou/in")


def lower_inside_another_mounts_upper_index(s: Side) -> str:
    return _in_other_mounts(s, "index=on", "ou/in")


def lower_is_another_mounts_workdir_index(s: Side) -> str:
    return _in_other_mounts(s, "index=on", "ow")


def upper_of_another_mount(s: Side) -> str:
    with s.live([s.d("ol"), s.d("ol2")], s.d("u"), s.d("ow")):
        return s.answer([s.d("l"), s.d("l2")], s.d("u"), s.d("w"))


def upper_of_another_mount_index(s: Side) -> str:
    with s.live([s.d("ol"), s.d("ol2")], s.d("u"), s.d("ow")):
        return s.answer([s.d("l"), s.d("l2")], s.d("u"), s.d("w"), "index=on")


def upper_used_before_with_another_lower_index(s: Side) -> str:
    first = s.answer([s.d("l1"), s.d("base")], s.d("u"), s.d("w"), "index=on")
    again = s.answer([s.d("l1"), s.d("other-base")], s.d("u"), s.d("w"), "index=on")
    other = s.answer([s.d("l2"), s.d("base")], s.d("u"), s.d("w"), "index=on")
    without = s.answer([s.d("l2"), s.d("base")], s.d("u"), s.d("w"))
    return f"{first}, same top lower {again}, another {other}, index=off {without}"


CASES = [
    workdir_as_lower, same_lower_twice, lower_inside_lower, lower_containing_lower,
    lower_inside_upper, lower_inside_workdir, upper_on_a_unionfs_mount,
    lower_inside_another_mounts_upper, lower_inside_another_mounts_upper_index,
    lower_is_another_mounts_workdir_index, upper_of_another_mount, upper_of_another_mount_index,
    upper_used_before_with_another_lower_index,
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_overlapping_layers_are_refused_as_by_the_kernel(
    newdir: Callable[..., Path], case: Case
) -> None:
    kernel = case(Side(newdir("k"), kernel=True))
    ours = case(Side(newdir("u"), kernel=False))
    assert ours == kernel


def test_a_lower_inside_a_kernel_overlays_upper_is_in_use_for_unionfs(
    newdir: Callable[..., Path],
) -> None:
    side = Side(newdir("x"), kernel=False)
    with ExitStack() as stack:
        stack.enter_context(kernel_overlay([side.d("ol"), side.d("ol2")], side.d("kmnt"),
                                           side.d("ou"), side.d("ow")))  # fmt: skip
        answer = side.answer([side.d("ou/in"), side.d("l")], side.d("u"), side.d("w"),
                             "index=on")  # fmt: skip
    assert answer == "EBUSY"


def test_a_killed_daemons_marks_are_gone_with_it(newdir: Callable[..., Path]) -> None:
    """The marks are held by the daemon's open descriptors: when it dies, however it dies,
    the kernel drops them and the directories are free again."""
    side = Side(newdir("x"), kernel=False)
    upper, work, mnt = side.d("ou"), side.d("ow"), side.d("other-mnt")
    opts = mount_options([side.d("ol"), side.d("ol2")], upper, work)
    proc = subprocess.Popen(unionfs_cmd("mount", "-f", "-o", opts, str(mnt)),
                            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = Deadline(60)
        while not os.path.ismount(mnt):
            assert proc.poll() is None and not deadline.expired(), "not mounted"
            time.sleep(0.02)
        assert layercheck.in_use(str(upper)) and layercheck.in_use(str(work))
        proc.kill()
        proc.wait()
        assert not layercheck.in_use(str(upper)) and not layercheck.in_use(str(work))
        assert side.answer([side.d("ou/in"), side.d("l")], side.d("u"), side.d("w"),
                           "index=on") == "mounted"  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        force_unmount(mnt)
