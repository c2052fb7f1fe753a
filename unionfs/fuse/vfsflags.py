"""The VFS flags of this daemon's own mount: the atime ones set at start, all followed after.

The kernel's FUSE ignores a mount's atime flags (its inodes are S_NOATIME), so the daemon
applies them itself (``union.atime``). They are set on the mount as well, as root (libfuse
3.14 knows only ``atime``/``noatime``): mountinfo then shows what kernel overlayfs would,
and mount(8) builds a remount's options from what mountinfo shows. A remount (through our
helper or ``mount -i``) changes them: a thread waits on ``/proc/self/mountinfo`` (POLLPRI
when the mount table changes) and hands the daemon the policy the new flags say.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
from collections.abc import Callable

from unionfs import livemounts
from unionfs.union.atime import AtimePolicy

log = logging.getLogger("unionfs.vfsflags")

_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_ATIME_ATTRS = {"relatime": 0x00, "noatime": 0x10, "strictatime": 0x20}
_MOUNT_ATTR__ATIME = 0x70
_MOUNT_ATTR_NODIRATIME = 0x80
_libc = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def set_atime_flags(mountpoint: str, policy: AtimePolicy) -> bool:
    """Give the mount at *mountpoint* the atime flags of *policy* (``mount_setattr``);
    False where this process may not (an unprivileged daemon), or the kernel refuses.
    Call it only while the mount is served: the path walk may ask the daemon."""
    attr = _MountAttr(
        _ATIME_ATTRS[policy.mode] | (_MOUNT_ATTR_NODIRATIME if policy.nodiratime else 0),
        _MOUNT_ATTR__ATIME | _MOUNT_ATTR_NODIRATIME, 0, 0,
    )  # fmt: skip
    done = _libc.syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(_AT_FDCWD),
                         ctypes.c_char_p(os.fsencode(mountpoint)), ctypes.c_uint(0),
                         ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))  # fmt: skip
    if done != 0:
        log.debug("mount_setattr %s: %s", mountpoint, os.strerror(ctypes.get_errno()))
        return False
    return True


def policy_of(mount: livemounts.Mount) -> AtimePolicy:
    return AtimePolicy.from_flags(mount.options, mount.readonly)


def follow(mount_id: int, changed: Callable[[AtimePolicy], None]) -> None:
    """Call *changed* with the new policy whenever mount *mount_id*'s flags change; return
    when it is gone. Runs in a thread of its own, blocked in poll(2) between changes."""
    last: tuple[tuple[str, ...], bool] | None = None
    with open(livemounts.MOUNTINFO, "rb") as f:
        poller = select.poll()
        poller.register(f.fileno(), select.POLLPRI | select.POLLERR)
        while True:
            f.seek(0)
            text = f.read().decode("utf-8", "surrogateescape")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            mine = [m for m in map(livemounts.parse_line, lines) if m.mount_id == mount_id]
            if not mine:
                return
            now = (mine[0].options, mine[0].readonly)
            if last is not None and now != last:
                changed(policy_of(mine[0]))
            last = now
            poller.poll()
