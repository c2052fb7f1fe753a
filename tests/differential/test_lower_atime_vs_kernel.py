"""Reading through a mount leaves the lower layers untouched, atimes included (issue 16.4).

The same two-layer tree is read in full through kernel overlayfs and through unionfs
(``find``, ``cat`` of every file, ``ls -lR``, ``readlink`` of every symlink, and a copy-up,
which reads a lower file to copy it): afterwards every lower entry must have the atime and
ctime it had before. Kernel overlayfs reads its lowers through a private noatime clone of
their mount and opens them with ``O_NOATIME``; the lowers here live on the test machine's
disk, mounted ``relatime``, with every atime set no later than its mtime, so any read that
is not spared would move it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mountutil import File, Symlink, tree
from writeutil import writable

LONG_AGO_NS = 1_600_000_000 * 10**9

LAYERS = [
    tree(
        {
            "top": b"top\n",
            "shared": {"from_top": b"t" * 5000, "link_top": Symlink(b"from_top")},
            "owned": File(b"not ours\n", uid=1000, gid=1000),
        }
    ),
    tree(
        {
            "shared": {"from_low": b"l" * 70000, "sub": {"deep": b"deep\n"}},
            "low_only": {"a": b"a", "b": b"b" * 300, "dangling": Symlink(b"../nowhere")},
            "copied": b"copied up from here\n",
            "abs": Symlink(b"/etc/passwd"),
        }
    ),
]


def entries(root: Path) -> list[str]:
    """Every path below *root*, children before their directory. Never ``os.walk``: it
    tells directories by following symlinks, and following one moves its atime."""
    found = []
    with os.scandir(root) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                found += entries(Path(entry.path))
            found.append(entry.path)
    return found


def age(lowers: list[Path]) -> None:
    """Every entry's atime and mtime far in the past, so relatime would move any atime."""
    for lower in lowers:
        for path in [*entries(lower), str(lower)]:
            os.utime(path, ns=(LONG_AGO_NS, LONG_AGO_NS), follow_symlinks=False)


def times(lowers: list[Path]) -> dict[str, tuple[int, int]]:
    """(atime, ctime) of every entry of the lowers, by ``layer/relative path``."""
    found = {}
    for i, lower in enumerate(lowers):
        for path in [*entries(lower), str(lower)]:
            st = os.lstat(path)
            found[f"l{i}/{os.path.relpath(path, lower)}"] = (st.st_atime_ns, st.st_ctime_ns)
    return found


def read_everything(mnt: Path) -> None:
    """What a user does to read a whole tree, then one copy-up of a lower file."""
    for cmd in (["find", str(mnt)], ["ls", "-lR", str(mnt)]):
        subprocess.run(cmd, check=True, capture_output=True)
    files = subprocess.run(["find", str(mnt), "-type", "f"], check=True, capture_output=True)
    for path in files.stdout.split():
        subprocess.run(["cat", path], check=True, capture_output=True)
    links = subprocess.run(["find", str(mnt), "-type", "l"], check=True, capture_output=True)
    for path in links.stdout.split():
        subprocess.run(["readlink", path], check=True, capture_output=True)
    with open(mnt / "copied", "ab") as f:
        f.write(b"appended\n")
    assert (mnt / "copied").read_bytes() == b"copied up from here\nappended\n"


def touched(tmp_path: Path, kernel: bool, opts: str = "") -> dict[str, object]:
    """The lower entries whose atime or ctime moved while the tree was read."""
    before: dict[str, tuple[int, int]] = {}

    def prepare(lowers: list[Path]) -> None:
        age(lowers)
        before.update(times(lowers))

    with writable(tmp_path, LAYERS, kernel=kernel, prepare=prepare, opts=opts) as m:
        read_everything(m.mnt)
        after = times(m.lowers)
    assert after.keys() == before.keys()
    return {path: (before[path], after[path]) for path in before if before[path] != after[path]}


def test_kernel_overlayfs_leaves_the_lower_atimes_alone(tmp_path: Path) -> None:
    """The oracle's behaviour, so the tests below compare with something known."""
    assert touched(tmp_path, kernel=True) == {}


@pytest.mark.parametrize("opts", ["", "indexdir=off"], ids=["index", "no-index"])
def test_reading_a_whole_tree_leaves_the_lowers_untouched(tmp_path: Path, opts: str) -> None:
    """With the index (listings, attributes and link targets from LMDB; data and the
    index's own walk from the layers) and without it (everything from the layers)."""
    assert touched(tmp_path, kernel=False, opts=opts) == {}
