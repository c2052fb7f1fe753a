"""The kernel's atime rule (``union.atime.needs_update``) and the updates ``Toucher`` makes
in an upper directory: the atime moves, the ctime does not."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from unionfs.safepath import DirFdCache, LayerDir
from unionfs.union.atime import DAY_NS, AtimePolicy, Toucher, needs_update

NOW = 1_000_000 * 10**9


def st(atime: int, mtime: int, ctime: int) -> os.stat_result:
    return os.stat_result((0o100644, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0,
                           atime, mtime, ctime))  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "times", "is_dir", "expected"),
    [
        (AtimePolicy("relatime"), (NOW - 10, NOW - 5, NOW - 20), False, True),  # atime <= mtime
        (AtimePolicy("relatime"), (NOW - 10, NOW - 20, NOW - 5), False, True),  # atime <= ctime
        (AtimePolicy("relatime"), (NOW - 10, NOW - 20, NOW - 20), False, False),
        (AtimePolicy("relatime"), (NOW - DAY_NS, NOW - 2 * DAY_NS, NOW - 2 * DAY_NS), False,
         True),  # a day old
        (AtimePolicy("strictatime"), (NOW - 10, NOW - 20, NOW - 20), False, True),
        (AtimePolicy("strictatime"), (NOW, NOW - 20, NOW - 20), False, False),
        (AtimePolicy("noatime"), (NOW - 10, NOW - 5, NOW - 5), False, False),
        (AtimePolicy("strictatime", nodiratime=True), (NOW - 10, NOW - 5, NOW - 5), True, False),
        (AtimePolicy("strictatime", nodiratime=True), (NOW - 10, NOW - 5, NOW - 5), False, True),
        (AtimePolicy("strictatime", readonly=True), (NOW - 10, NOW - 5, NOW - 5), False, False),
    ],
)  # fmt: skip
def test_needs_update_is_the_kernel_rule(
    policy: AtimePolicy, times: tuple[int, int, int], is_dir: bool, expected: bool
) -> None:
    assert needs_update(policy, st(*times), is_dir, NOW) is expected


def test_from_flags_reads_mountinfo_words() -> None:
    assert AtimePolicy.from_flags(["rw", "relatime"]) == AtimePolicy("relatime")
    assert AtimePolicy.from_flags(["rw", "noatime", "nodiratime"]) == AtimePolicy("noatime", True)
    assert AtimePolicy.from_flags(["ro"], readonly=True) == AtimePolicy("strictatime", False, True)


@pytest.mark.parametrize("mode", ["relatime", "strictatime", "noatime"])
def test_toucher_moves_atime_and_leaves_ctime(tmp_path: Path, mode: str) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_bytes(b"data")
    hour = 3600 * 10**9
    now = time.time_ns()
    for name in ("f", "d"):  # atime newer than mtime and ctime: only strictatime updates
        os.utime(tmp_path / name, ns=(now + 60 * 10**9, now - hour))
    before = {n: os.lstat(tmp_path / n) for n in ("f", "d")}
    cache = DirFdCache()
    layer = LayerDir(str(tmp_path), cache)
    toucher = Toucher(layer, AtimePolicy(mode))
    try:
        toucher.accessed(b"f")
        toucher.accessed(b"d")
    finally:
        toucher.close()
        layer.close()
        cache.close()
    for name in ("f", "d"):
        after = os.lstat(tmp_path / name)
        assert (after.st_atime_ns != before[name].st_atime_ns) is (mode == "strictatime"), name
        assert after.st_ctime_ns == before[name].st_ctime_ns, name


def test_relatime_remembers_an_entry_that_needs_nothing_until_a_change(tmp_path: Path) -> None:
    """A read under relatime asks the upper nothing while its last answer holds: the entry
    is remembered (no fstat per read) until something changes through the mount."""
    path = tmp_path / "f"
    path.write_bytes(b"data")
    hour = 3600 * 10**9
    now = time.time_ns()
    fresh = now + hour  # after the mtime and the ctime (which utime sets to now)
    os.utime(path, ns=(fresh, now - hour))
    cache = DirFdCache()
    layer = LayerDir(str(tmp_path), cache)
    toucher = Toucher(layer, AtimePolicy("relatime"))
    try:
        toucher.accessed(b"f")
        # Behind the mount's back the mtime passes the atime: a remembered entry is not
        # asked again, so nothing moves...
        os.utime(path, ns=(fresh, fresh + hour))
        toucher.accessed(b"f")
        assert os.lstat(path).st_atime_ns == fresh
        # ...until the mount reports a change, after which relatime updates it.
        toucher.changed()
        toucher.accessed(b"f")
        assert os.lstat(path).st_atime_ns != fresh
    finally:
        toucher.close()
        layer.close()
        cache.close()
