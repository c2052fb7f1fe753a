"""A deleted file the kernel still holds never lends its data to a new file (issue 16.2).

On ext4 a freed inode number goes to the next file created. unionfs numbers its nodes by
the upper files' ``st_ino``; when the kernel still holds the deleted file (an ``O_PATH``
descriptor is enough) and a new file gets its number, the kernel's cached inode (size and
pages) is reused for the new file. And an unlinked file that is still open is reopened by
its old path, so the open lands on whatever lives there now. Kernel overlayfs keeps a
reference to the upper inode itself and has neither problem. The upper is a loop-mounted
ext4 made for the test (tmpfs does not reuse numbers the same way).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mountutil import fresh_dir, tree
from writeutil import Mounted, ext4, outcome, writable

LAYERS = [tree({"low": b"lower data\n", "d": {"x": b"x"}})]


@contextlib.contextmanager
def on_ext4(tmp_path: Path, kernel: bool) -> Iterator[Mounted]:
    disk = fresh_dir(tmp_path, "ext4")
    with ext4(disk, "64M"), writable(disk, LAYERS, kernel) as m:
        yield m


def new_file_after_a_held_delete(m: Mounted) -> dict[str, object]:
    """8 KiB in ``a``, held by an O_PATH descriptor, deleted; then ``b`` with 100 bytes."""
    m.path("a").write_bytes(b"A" * 8192)
    held = os.open(m.path("a"), os.O_PATH)
    try:
        os.unlink(m.path("a"))
        m.path("b").write_bytes(b"B" * 100)
        return {
            "size": os.stat(m.path("b")).st_size,
            "content": m.path("b").read_bytes() == b"B" * 100,
            "upper": (m.upper / "b").read_bytes() == b"B" * 100,
        }
    finally:
        os.close(held)


def reopen_after_delete(m: Mounted, name: str, replace: bool) -> dict[str, object]:
    """Hold *name* open read-write, delete it (maybe create another file by that name),
    reopen the held file through /proc and write through that: only the held file may
    change."""
    path = m.path(name)
    if name != "low":
        path.write_bytes(b"old content\n")
    held = os.open(path, os.O_RDWR)
    try:
        os.unlink(path)
        if replace:
            path.write_bytes(b"the new file\n")
        again = outcome(lambda: os.open(f"/proc/self/fd/{held}", os.O_RDWR))
        wrote: object = None
        if again[0] == "ok":
            fd = again[1]
            assert isinstance(fd, int)
            wrote = outcome(lambda: (os.pwrite(fd, b"HELD", 0), os.fsync(fd)))
            os.close(fd)
        return {
            "reopen": again[0] if again[0] == "ok" else again,
            "write": wrote,
            "held": os.pread(held, 100, 0),
            "name": outcome(path.read_bytes),
            "upper": outcome((m.upper / name).read_bytes) if replace else None,
        }
    finally:
        os.close(held)


CASES: dict[str, Callable[[Mounted], object]] = {
    "new file after a held delete": new_file_after_a_held_delete,
    "reopen, a new file by that name": lambda m: reopen_after_delete(m, "c", True),
    "reopen, nothing by that name": lambda m: reopen_after_delete(m, "e", False),
    "reopen, a copied-up lower file": lambda m: reopen_after_delete(m, "low", False),
}


def test_kernel_overlayfs_keeps_deleted_files_apart(tmp_path: Path) -> None:
    """The oracle's behaviour, spelled out."""
    with on_ext4(tmp_path, kernel=True) as m:
        found = {name: case(m) for name, case in CASES.items()}
    assert found["new file after a held delete"] == {"size": 100, "content": True, "upper": True}
    assert found["reopen, a new file by that name"] == {
        "reopen": "ok",
        "write": ("ok", (4, None)),
        "held": b"HELDcontent\n",
        "name": ("ok", b"the new file\n"),
        "upper": ("ok", b"the new file\n"),
    }
    assert found["reopen, a copied-up lower file"]["held"] == b"HELDr data\n"
    assert found["reopen, nothing by that name"]["held"] == b"HELDcontent\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_deleted_files_stay_apart_as_on_the_kernel(tmp_path: Path, case: str) -> None:
    found = {}
    for kernel in (True, False):
        with on_ext4(tmp_path, kernel) as m:
            found[kernel] = CASES[case](m)
    assert found[False] == found[True]
