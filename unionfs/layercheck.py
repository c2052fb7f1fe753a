"""Layers that overlap, as kernel overlayfs refuses them at mount time.

By identity (device and inode, as the kernel compares dentries), not by path: a lower layer
given twice, a lower that is the upper or the work directory, or that lies inside another
layer (``ovl_setup_trap``/``ovl_check_layer``: ELOOP); an upper or work directory on a
unionfs mount; with ``index=on``, a layer that is the upper or work directory of another
live mount (EBUSY; without index the kernel only warns), and an upper first used with
another lower (the origin it records, ESTALE).

"In use" is the kernel's I_OVL_INUSE, across processes: a daemon holds a shared lock on a
byte far past the end of its upper and work directories (an open file description lock,
released by the kernel when the daemon dies, however it dies), and kernel overlay mounts
name theirs in mountinfo. Looking never takes anything.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from unionfs import livemounts
from unionfs.errors import UserError

Ident = tuple[int, int]  # (st_dev, st_ino)
_MARK = 0x756E696F6E6673  # "unionfs": the byte whose lock says "in use"
_FLOCK = "hhxxxxqqi4x"  # struct flock on Linux x86_64/aarch64
LEAVING = 10.0  # seconds a daemon whose mount is gone may take to let its layers go
ORIGIN_XATTRS = (b"trusted.overlay.unionfs.origin", b"user.overlay.unionfs.origin")


def ident(path: str) -> Ident:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def chain(path: str) -> list[Ident]:
    """*path* and each directory above it up to the root, by identity (through ``..``,
    so a symlink in the path is already behind us)."""
    found: list[Ident] = []
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        while True:
            st = os.fstat(fd)
            here = (st.st_dev, st.st_ino)
            if found and found[-1] == here:
                return found
            found.append(here)
            parent = os.open("..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = parent
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Layer:
    role: str  # "lowerdir", "upperdir", "workdir"
    given: str  # as the user wrote it
    path: str  # resolved


def overlaps(layers: Sequence[Layer]) -> None:
    """Refuse lower layers that are, or lie inside, another layer of this mount (ELOOP).
    Upper inside a lower and the upper/work pair are checked by the caller."""
    roots = {ident(layer.path): layer for layer in layers}
    lowers = [layer for layer in layers if layer.role == "lowerdir"]
    seen: dict[Ident, Layer] = {}
    for layer in layers:
        key = ident(layer.path)
        other = seen.get(key)
        if other is not None and "lowerdir" in (layer.role, other.role):
            lower, rest = (layer, other) if layer.role == "lowerdir" else (other, layer)
            what = "given twice" if rest.role == "lowerdir" else f"also the {rest.role}"
            raise UserError(f"lowerdir {lower.given!r} is {what} (ELOOP: conflicting layers)")
        seen.setdefault(key, layer)
    for layer in lowers:
        for above in chain(layer.path)[1:]:
            other = roots.get(above)
            if other is not None:
                raise UserError(f"lowerdir {layer.given!r} is inside the {other.role} "
                                f"{other.given!r} (ELOOP: overlapping layers)")  # fmt: skip


def on_unionfs(layer: Layer) -> None:
    """Refuse an upper or work directory on a unionfs mount: the kernel refuses one there
    too (EINVAL: unionfs has no RENAME_WHITEOUT, among others)."""
    dev = os.stat(layer.path).st_dev
    where = f"{os.major(dev)}:{os.minor(dev)}"
    for mount in livemounts.table():
        if mount.dev == where and mount.fstype == "fuse.unionfs":
            raise UserError(f"{layer.role} {layer.given!r} is on the unionfs mount "
                            f"{mount.mountpoint}: not an upper layer's file system (EINVAL)")


# -- in use by another live mount ----------------------------------------------------------


def _lock(kind: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, _MARK, 1, 0)


def mark_in_use(paths: Sequence[str]) -> list[int]:
    """Mark *paths* in use for as long as the returned descriptors stay open (the daemon
    keeps them for its lifetime; the kernel drops the marks when it dies)."""
    fds = []
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _lock(fcntl.F_RDLCK))
        except OSError:
            os.close(fd)
            continue  # a file system without locks: nothing to mark it with
        fds.append(fd)
    return fds


def marked_by_others(fd: int) -> bool:
    """Whether another open file description marks the directory of *fd* in use (one's own
    marks never conflict with oneself)."""
    try:
        got = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _lock(fcntl.F_WRLCK))
    except OSError:
        return False
    kind: int = struct.unpack(_FLOCK, got)[0]
    return kind != fcntl.F_UNLCK


def _marked(ident_fd: int) -> bool:
    try:
        fd = os.open(f"/proc/self/fd/{ident_fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False  # not ours to read: cannot tell
    try:
        return marked_by_others(fd)
    finally:
        os.close(fd)


def _kernel_overlay_dirs() -> set[Ident]:
    """The upper and work directories of kernel overlay mounts (their options say them)."""
    found = set()
    for mount in livemounts.table():
        if mount.fstype != "overlay":
            continue
        for option in mount.super:
            key, _, value = option.partition("=")
            if key in ("upperdir", "workdir") and value:
                try:
                    found.add(ident(value))
                except OSError:
                    continue
    return found


def in_use(path: str, kernel: set[Ident] | None = None) -> bool:
    """Whether *path* or a directory above it is the upper or work directory of another
    live mount (a unionfs daemon's mark, or a kernel overlay mount's options)."""
    kernel = _kernel_overlay_dirs() if kernel is None else kernel
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        previous = None
        while True:
            st = os.fstat(fd)
            here = (st.st_dev, st.st_ino)
            if here == previous:
                return False
            if here in kernel or _marked(fd):
                return True
            previous = here
            parent = os.open("..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = parent
    finally:
        os.close(fd)


def wait_for_leaving(paths: Sequence[str], held: Callable[[], bool]) -> bool:
    """*held()*, once no daemon on its way out still has one of *paths* (or a directory
    above one) as its upper or work directory: the kernel's in-use flag goes with the
    unmount, a daemon's mark only when the daemon lets go, a moment after (it does so
    first, ``cli.mount._serve``), so that ``umount; mount`` of the same layers works as
    with the kernel. Waits at most ``LEAVING`` seconds for such a daemon."""
    if not held():
        return False
    wanted = {here for path in paths for here in chain(path)}
    deadline = time.monotonic() + LEAVING
    while _leaving(wanted) and time.monotonic() < deadline:
        time.sleep(0.01)
        if not held():
            return False
    return held()


def _leaving(wanted: set[Ident]) -> bool:
    for record in livemounts.leaving():
        for path in (record.upper, record.work):
            with contextlib.suppress(OSError):
                if path is not None and ident(path) in wanted:
                    return True
    return False


def check_in_use(layers: Sequence[Layer], index: bool) -> list[str]:
    """With *index*, refuse a layer in use by another live mount (EBUSY); without, the
    kernel only warns: the warnings, one line each."""
    kernel = _kernel_overlay_dirs()
    warnings = []
    for layer in layers:
        if not wait_for_leaving([layer.path], functools.partial(in_use, layer.path, kernel)):
            continue
        if index:
            raise UserError(f"{layer.role} {layer.given!r} is in use as the upperdir or "
                            "workdir of another mount (EBUSY; index=off allows it)")  # fmt: skip
        warnings.append(f"warning: {layer.role} {layer.given!r} is in use as the upperdir or "
                        "workdir of another mount: using files from both gives undefined "
                        "results")  # fmt: skip
    return warnings


# -- the origin an upper records (index=on) ------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


class _FileHandle(ctypes.Structure):
    _fields_ = (("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128))  # fmt: skip


def origin_of(path: str) -> bytes:
    """What identifies lower directory *path* across mounts and reboots: its file handle
    and its file system's id, as the kernel's ``overlay.origin`` (device and inode where the
    file system gives no handles)."""
    handle = _FileHandle(128, 0)
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(-100, os.fsencode(path), ctypes.byref(handle),
                               ctypes.byref(mount_id), 0) == 0:  # fmt: skip
        raw = bytes(handle.f_handle[: handle.handle_bytes])
        return b"fh:%d:%s:%x" % (handle.handle_type, raw.hex().encode(), os.statvfs(path).f_fsid)
    st = os.stat(path)
    return b"ino:%d:%d" % (st.st_dev, st.st_ino)


def check_origin(upper: str, given_upper: str, top_lower: str) -> None:
    """With index=on: an upper records the lower it was first mounted over and refuses any
    other (ESTALE), as the kernel's ``ovl_verify_origin`` of the upper root."""
    want = origin_of(top_lower)
    for name in ORIGIN_XATTRS:
        try:
            have = os.getxattr(upper, name)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.EPERM):
                continue
            raise
        if have != want:
            raise UserError(f"upperdir {given_upper!r} was used with another lowerdir "
                            "(ESTALE: the origin it recorded differs; index=off allows it)")
        return
    for name in ORIGIN_XATTRS:
        try:
            os.setxattr(upper, name, want)
            return
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP):
                raise
