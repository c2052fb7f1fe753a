"""Helpers for the write-path tests: safe operations on a mount, outcomes, layer hashes.

Every operation here reaches its target through ``O_PATH | O_NOFOLLOW`` descriptors of the
parent directories, so a symlink in a random stack (``/etc``, ``../../..``) is never followed
out of the mount, and non-regular files are never opened (a random device node may be a
real disk). An ``Outcome`` is what a step returned or the errno it failed with, so two
mounts can be compared step by step.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mountutil import Dir, build_stack, fresh_dir, kernel_overlay, unionfs_mount
from treecmp import Snapshot, diff_trees, drop_unstatable, kind, snapshot

Outcome = tuple[str, object]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with *mode* (KEEP_SIZE 0x01, PUNCH_HOLE 0x02, ZERO_RANGE 0x10, ...)."""
    if _libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def outcome(fn: Callable[[], object]) -> Outcome:
    """``("ok", result)`` or ``("err", "ENOENT")``; anything but OSError propagates."""
    try:
        return ("ok", fn())
    except OSError as exc:
        return ("err", errname(exc))


def summary(st: os.stat_result) -> tuple[object, ...]:
    """The comparable part of a stat: type, mode bits, owner, size (not of dirs), nlink."""
    is_dir = stat.S_ISDIR(st.st_mode)
    return (
        kind(st.st_mode),
        oct(stat.S_IMODE(st.st_mode)),
        st.st_uid,
        st.st_gid,
        None if is_dir else st.st_size,
        None if is_dir else st.st_nlink,
    )


# -- walking a mount without following symlinks -------------------------------------------


def split(path: bytes) -> tuple[bytes, bytes]:
    head, _, tail = path.rpartition(b"/")
    return head, tail


class Parent:
    """An ``O_PATH`` descriptor of the parent directory of *path* below *root_fd*.

    Each component is opened with ``O_NOFOLLOW | O_DIRECTORY``: a symlink or a
    non-directory on the way fails with ENOTDIR (the same on every filesystem), a missing
    one with ENOENT. Use as a context manager; ``fd`` and ``name`` are then set.
    """

    def __init__(self, root_fd: int, path: bytes) -> None:
        self.root_fd = root_fd
        self.dirs, self.name = split(path)
        self.fd = -1

    def __enter__(self) -> Parent:
        self.fd = open_dir(self.root_fd, self.dirs)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    @property
    def proc(self) -> bytes:
        """A path for calls without ``dir_fd``: the parent through ``/proc``, then the name.
        Only the final component may be followed by such a call (the caller checks it)."""
        return b"/proc/self/fd/%d/%s" % (self.fd, self.name)

    def lstat(self) -> os.stat_result:
        return os.stat(self.name, dir_fd=self.fd, follow_symlinks=False)


def open_dir(root_fd: int, rel: bytes) -> int:
    """``O_PATH`` descriptor of directory *rel* below *root_fd*, never following symlinks."""
    fd = os.dup(root_fd)
    try:
        for part in filter(None, rel.split(b"/")):
            nxt = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(root_fd: int, path: bytes, flags: int, mode: int = 0o644) -> int:
    """Open regular file *path* (never a symlink, fifo or device: ``EPERM``-like refusals
    are raised as ``OSError(EINVAL)`` before anything is opened, on every mount alike)."""
    with Parent(root_fd, path) as p:
        if not p.name:
            raise OSError(errno.EISDIR, "the root")
        if not flags & os.O_EXCL:
            try:
                st = p.lstat()
            except FileNotFoundError:
                if not flags & os.O_CREAT:
                    raise
            else:
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    raise NotRegular(kind(st.st_mode))
        return os.open(p.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=p.fd)


class NotRegular(Exception):
    """A step that would have opened a fifo, device or symlink: not done, on either mount."""


# -- layer hashes --------------------------------------------------------------------------


def layer_state(root: Path | str) -> dict[bytes, tuple[object, ...]]:
    """Everything about a directory tree that a write could change: type, mode, owner,
    size, mtime, ctime, rdev, content hash, link target and every xattr (trusted too)."""
    top = os.fsencode(root)
    state: dict[bytes, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [b"", *dirnames, *filenames] if dirpath == top else [*dirnames, *filenames]:
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            xattrs = tuple(
                sorted(
                    (n, os.getxattr(path, n, follow_symlinks=False))
                    for n in os.listxattr(path, follow_symlinks=False)
                )
            )
            state[os.path.relpath(path, top)] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_nlink, st.st_rdev,
                st.st_mtime_ns, st.st_ctime_ns, st.st_ino, extra, xattrs,
            )  # fmt: skip
    return state


def upper_entries(upper: Path | str) -> list[bytes]:
    """Every path below *upper* (relative, sorted), for "nothing was left behind" checks."""
    top = os.fsencode(upper)
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, name), top))
    return sorted(out)


# -- small filesystems ----------------------------------------------------------------------


@contextmanager
def tmpfs(mnt: Path, size: str = "4m", options: str = "") -> Iterator[Path]:
    """A tmpfs of *size* at *mnt*, unmounted (lazily if busy) on the way out."""
    opts = f"size={size}" + (f",{options}" if options else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        result = subprocess.run(["umount", str(mnt)], capture_output=True, check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


@contextmanager
def ext4(mnt: Path, size: str = "256M") -> Iterator[Path]:
    """A fresh ext4 filesystem of *size* at *mnt*, on a loop device over an image file
    beside *mnt*; unmounted (lazily if busy, which frees the loop device once idle) and
    its image removed on the way out. ext4 reuses freed inode numbers at once, as
    tmpfs does not."""
    image = mnt.with_name(mnt.name + ".ext4")
    with open(image, "wb") as f:
        f.truncate(parse_size(size))
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
        try:
            yield mnt
        finally:
            result = subprocess.run(["umount", str(mnt)], capture_output=True, check=False)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
    finally:
        image.unlink()


def parse_size(text: str) -> int:
    """``"256M"`` -> bytes (K, M, G suffixes, powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def remount_ro(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)


# -- writable mounts of a stack ------------------------------------------------------------


@dataclass
class Mounted:
    """A writable mount: its mount point, lower layers (top first), upper and workdir."""

    mnt: Path
    lowers: list[Path]
    upper: Path
    work: Path

    def path(self, rel: str | bytes = "") -> Path:
        return self.mnt / os.fsdecode(rel) if rel else self.mnt


@contextmanager
def writable(
    base: Path,
    layers: Sequence[Dir],
    kernel: bool = False,
    upper_base: Path | None = None,
    prepare: Callable[[list[Path]], None] | None = None,
    opts: str = "",
) -> Iterator[Mounted]:
    """*layers* (top first, kernel markers) under a fresh upper, mounted with unionfs or, with
    *kernel*, kernel overlayfs. Upper and workdir go below *upper_base* (default *base*).
    ``prepare(lowers)`` runs before the mount: lowers must not change under a mount.
    *opts*: more mount options for either."""
    side = fresh_dir(base, "k" if kernel else "u")
    lowers = build_stack(side, layers, kernel=True)
    if prepare is not None:
        prepare(lowers)
    holder = fresh_dir(upper_base or side, "rw")
    upper, work, mnt = holder / "upper", holder / "work", side / "mnt"
    for path in (upper, work, mnt):
        path.mkdir()
    if kernel:
        mounting = kernel_overlay(lowers, mnt, upper, work, opts)
    else:
        mounting = unionfs_mount(lowers, mnt, upper, work, [opts] if opts else [])
    with mounting:
        yield Mounted(mnt, lowers, upper, work)


def kernel_view(base: Path, lowers: Sequence[Path], upper: Path, opts: str = "") -> Snapshot:
    """What kernel overlayfs shows over *lowers* with *upper* and a fresh workdir."""
    holder = fresh_dir(base, "again")
    (holder / "work").mkdir()
    (holder / "mnt").mkdir()
    with kernel_overlay(lowers, holder / "mnt", upper, holder / "work", opts):
        return drop_unstatable(snapshot(holder / "mnt"))


def on_both(base: Path, layers: Sequence[Dir], steps: Callable[[Mounted], object]) -> list[str]:
    """Run *steps* on kernel overlayfs and on unionfs over *layers*; the differences of what
    they returned (a list of outcomes, best), and of the trees they left."""
    results: dict[bool, object] = {}
    views: dict[bool, Snapshot] = {}
    problems = []
    for kernel in (True, False):
        with writable(base, layers, kernel=kernel) as m:
            results[kernel] = steps(m)
            try:
                views[kernel] = drop_unstatable(snapshot(m.mnt))
            except OSError as exc:  # reading the tree failed: a finding, not a test error
                problems.append(f"{'kernel' if kernel else 'unionfs'}: snapshot: {exc!r}")
                views[kernel] = {}
    k, u = results[True], results[False]
    if isinstance(k, list) and isinstance(u, list) and len(k) == len(u):
        for i, (a, b) in enumerate(zip(k, u, strict=True)):
            if a != b:
                problems.append(f"step {i}: kernel={a!r} unionfs={b!r}")
    elif k != u:
        problems.append(f"kernel={k!r}\nunionfs={u!r}")
    problems += diff_trees(views[True], views[False])
    return problems
