"""Every setattr marks its entry changed (ctime), even one that changes nothing, as on
kernel overlayfs: utimensat with the times an entry has, chmod to its mode, chown to its
owner, ftruncate to its size.

The ctime is compared twice: as the mount shows it (the kernel's FUSE keeps its own times of
a regular file under the write-back cache) and on each side's upper (what is left once the
kernel forgets the inode, and what a later mount shows). Every entry is copied up first
(chown to -1, -1), so its upper exists before each change.
"""

from __future__ import annotations

import ctypes
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mountutil import Dir, Fifo, File, Symlink
from write_pairs import Pair
from writeutil import Parent

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100
_libc = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _utimensat(p: Parent, atime: tuple[int, int] | None, mtime: tuple[int, int] | None) -> None:
    """utimensat(2) of the entry itself; ``None`` for both: NULL (both to now)."""
    times = None
    if atime is not None and mtime is not None:
        times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    if _libc.utimensat(p.fd, p.name, times, AT_SYMLINK_NOFOLLOW) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _ts(ns: int) -> tuple[int, int]:
    return divmod(ns, 10**9)


Action = Callable[[Parent, os.stat_result], None]
ACTIONS: dict[str, Action] = {
    "utimensat, both times as they are": lambda p, st: _utimensat(
        p, _ts(st.st_atime_ns), _ts(st.st_mtime_ns)
    ),
    "utimensat, the mtime as it is, atime UTIME_OMIT": lambda p, st: _utimensat(
        p, (0, UTIME_OMIT), _ts(st.st_mtime_ns)
    ),
    "utimensat, the atime as it is, mtime UTIME_OMIT": lambda p, st: _utimensat(
        p, _ts(st.st_atime_ns), (0, UTIME_OMIT)
    ),
    "utimensat, both UTIME_OMIT (nothing at all)": lambda p, st: _utimensat(
        p, (0, UTIME_OMIT), (0, UTIME_OMIT)
    ),
    "utimensat, UTIME_NOW": lambda p, st: _utimensat(p, (0, UTIME_NOW), (0, UTIME_NOW)),
    "utimensat NULL": lambda p, st: _utimensat(p, None, None),
    "chown to its owner": lambda p, st: os.chown(
        p.name, st.st_uid, st.st_gid, dir_fd=p.fd, follow_symlinks=False
    ),
}
ON_REGULAR: dict[str, Action] = {
    "chmod to its mode": lambda p, st: os.chmod(p.proc, stat.S_IMODE(st.st_mode)),
    "ftruncate to its size": lambda p, st: _ftruncate(p, st.st_size),
    # The write-back cache flushes the times after a link and an unlink (the same mtime):
    # a utimensat after those is no flush, and marks the file changed.
    "after a link and an unlink, utimensat, the mtime as it is": lambda p, st: _utimensat(
        p, (0, UTIME_OMIT), _ts(st.st_mtime_ns)
    ),
}
PRELUDES = {"after a link and an unlink, utimensat, the mtime as it is": lambda p: _link_unlink(p)}
ON_DIRECTORY: dict[str, Action] = {
    "chmod to its mode": lambda p, st: os.chmod(p.proc, stat.S_IMODE(st.st_mode)),
}


def _ftruncate(p: Parent, size: int) -> None:
    fd = os.open(p.name, os.O_WRONLY | os.O_NOFOLLOW, dir_fd=p.fd)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _link_unlink(p: Parent) -> None:
    os.link(p.name, p.name + b".2", src_dir_fd=p.fd, dst_dir_fd=p.fd, follow_symlinks=False)
    os.unlink(p.name + b".2", dir_fd=p.fd)


def _layers() -> list[Dir]:
    return [
        Dir(
            {
                b"f": File(b"lower file\n", mode=0o640, uid=1000),
                b"d": Dir({b"x": File(b"x")}),
                b"ld": Dir({b"y": File(b"y")}, mode=0o2775),
                b"s": Symlink(b"/etc"),
                b"p": Fifo(),
            }
        ),
        Dir({b"d": Dir({b"z": File(b"z")})}),
    ]


UPPER_ONLY = {b"up": 0o100644, b"ud": 0o040755}
ENTRIES = [b"up", b"ud", b"f", b"d", b"ld", b"s", b"p"]


def _actions(mode: int) -> dict[str, Action]:
    if stat.S_ISREG(mode):
        return ACTIONS | ON_REGULAR
    if stat.S_ISDIR(mode):
        return ACTIONS | ON_DIRECTORY
    return ACTIONS


def _moved(root: int, upper: Path, path: bytes, what: str, action: Action) -> tuple[bool, bool]:
    """Whether *action* moved the ctime of *path*: as the mount shows it, on the upper."""
    with Parent(root, path) as p:
        # Held open, the kernel keeps the inode (and the times it keeps of a regular file)
        # while other tests drop the caches: see the eviction note in semantics.md.
        pinned = os.open(p.name, os.O_PATH | os.O_NOFOLLOW, dir_fd=p.fd)
        try:
            if what in PRELUDES:
                PRELUDES[what](p)
            before, upper_before = p.lstat(), os.lstat(upper / os.fsdecode(path))
            time.sleep(0.02)  # past the coarse clock's tick, whatever the filesystem's grain
            action(p, before)
            after, upper_after = p.lstat(), os.lstat(upper / os.fsdecode(path))
        finally:
            os.close(pinned)
    return (after.st_ctime_ns > before.st_ctime_ns,
            upper_after.st_ctime_ns > upper_before.st_ctime_ns)  # fmt: skip


def _prepare(root: int) -> None:
    """The upper-only entries, then every entry copied up (chown to -1, -1)."""
    for name, mode in UPPER_ONLY.items():
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o755, dir_fd=root)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=root))
    for name in ENTRIES:
        os.chown(name, -1, -1, dir_fd=root, follow_symlinks=False)


@pytest.mark.parametrize("features", ["redirect_dir=off,metacopy=off,index=off",
                                      "redirect_dir=on,metacopy=on,index=on"])  # fmt: skip
def test_every_setattr_marks_the_entry_changed(features: str) -> None:
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-ctime-")), _layers(),
                unionfs_forms=False, features=features)  # fmt: skip
    try:
        pair.mount()
        kroot = os.open(pair.dirs["k/mnt"], os.O_RDONLY | os.O_DIRECTORY)
        uroot = os.open(pair.dirs["u/mnt"], os.O_RDONLY | os.O_DIRECTORY)
        try:
            _prepare(kroot)
            _prepare(uroot)
            differences = []
            for path in ENTRIES:
                mode = os.lstat(path, dir_fd=kroot).st_mode
                for what, action in _actions(mode).items():
                    kernel = _moved(pair.kroot, pair.dirs["k/upper"], path, what, action)
                    union = _moved(pair.uroot, pair.dirs["u/upper"], path, what, action)
                    if kernel != union:
                        differences.append(f"{path!r} {what}: (mount, upper) ctime moved: "
                                           f"kernel={kernel} unionfs={union}")  # fmt: skip
        finally:
            os.close(kroot)
            os.close(uroot)
        assert not differences, "\n".join(differences)
        pair.finish()
    finally:
        pair.close()
