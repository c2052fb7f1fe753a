"""Mount attributes through the new mount API: ``open_tree`` clones and ``mount_setattr``.

Kernel overlayfs reads its layers through private clones of their mounts with other atime
flags (``ovl_get_layers``, ``ovl_get_upper``); the daemon does the same where it may
(CAP_SYS_ADMIN over its mount namespace), and sets its own mount's atime flags. Thin
wrappers: none decides anything.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_OPEN_TREE = 428  # the generic syscall table (x86_64 and aarch64 alike)
_SYS_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 1
_AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR__ATIME = 0x70  # the atime mode bits, cleared when one mode is set
MOUNT_ATTR_NODIRATIME = 0x80


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def set_mount_attrs(fd: int, path: bytes, attr_set: int, attr_clr: int) -> int:
    """``mount_setattr(2)`` of the mount at *path* relative to *fd* (b"": *fd* itself);
    0, or the errno."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    done = _libc.syscall(
        _SYS_MOUNT_SETATTR,
        ctypes.c_int(fd),
        ctypes.c_char_p(path),
        ctypes.c_uint(0 if path else _AT_EMPTY_PATH),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    return 0 if done == 0 else ctypes.get_errno()


def clone_mount(fd: int, attr_set: int, attr_clr: int) -> int | None:
    """A private clone of the mount at directory *fd* (a detached bind mount,
    ``open_tree(OPEN_TREE_CLONE)``) with mount attributes *attr_set* set and *attr_clr*
    cleared, as an ``O_PATH`` descriptor of the same directory; None where this process
    may not make one (it needs CAP_SYS_ADMIN over its mount namespace)."""
    clone = int(
        _libc.syscall(
            _SYS_OPEN_TREE,
            ctypes.c_int(fd),
            ctypes.c_char_p(b""),
            ctypes.c_uint(_OPEN_TREE_CLONE | _AT_EMPTY_PATH | os.O_CLOEXEC),
        )
    )
    if clone < 0:
        return None
    if set_mount_attrs(clone, b"", attr_set, attr_clr) != 0:
        os.close(clone)
        return None
    return clone


def noatime_clone(fd: int) -> int | None:
    """A ``noatime`` clone of the mount at directory *fd* (``clone_mount``). Nothing reached
    through it updates an atime: kernel overlayfs reads its lowers through such clones
    (``ovl_get_layers``: MNT_NOATIME)."""
    return clone_mount(fd, MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME)
