"""The VFS flags of this daemon's own mount: the atime ones set at start, all followed after.

The kernel's FUSE ignores a mount's atime flags (its inodes are S_NOATIME), so the daemon
applies them itself (``union.atime``). They are set on the mount as well, as root (libfuse
3.14 knows only ``atime``/``noatime``): mountinfo then shows what kernel overlayfs would,
and mount(8) builds a remount's options from what mountinfo shows. A remount (through our
helper or ``mount -i``) changes them: a thread waits on ``/proc/self/mountinfo`` (POLLPRI
when the mount table changes) and hands the daemon the policy the new flags say.
"""

from __future__ import annotations

import logging
import os
import select
from collections.abc import Callable

from unionfs import livemounts, mountattrs
from unionfs.union.atime import AtimePolicy

log = logging.getLogger("unionfs.vfsflags")
AT_FDCWD = -100

_ATIME_ATTRS = {"relatime": 0, "noatime": mountattrs.MOUNT_ATTR_NOATIME,
                "strictatime": mountattrs.MOUNT_ATTR_STRICTATIME}  # fmt: skip


def set_atime_flags(mountpoint: str, policy: AtimePolicy) -> bool:
    """Give the mount at *mountpoint* the atime flags of *policy* (``mount_setattr``);
    False where this process may not (an unprivileged daemon), or the kernel refuses.
    Call it only while the mount is served: the path walk may ask the daemon."""
    attr_set = _ATIME_ATTRS[policy.mode]
    if policy.nodiratime:
        attr_set |= mountattrs.MOUNT_ATTR_NODIRATIME
    attr_clr = mountattrs.MOUNT_ATTR__ATIME | mountattrs.MOUNT_ATTR_NODIRATIME
    error = mountattrs.set_mount_attrs(AT_FDCWD, os.fsencode(mountpoint), attr_set, attr_clr)
    if error:
        log.debug("mount_setattr %s: %s", mountpoint, os.strerror(error))
    return not error


def policy_of(mount: livemounts.Mount) -> AtimePolicy:
    return AtimePolicy.from_flags(mount.options, mount.readonly)


Flags = tuple[tuple[str, ...], bool]  # a mount's own options and whether it is read-only


def flags_of(mount_id: int) -> Flags | None:
    """Mount *mount_id*'s flags as mountinfo shows them now; None when it is gone."""
    mine = [m for m in livemounts.table() if m.mount_id == mount_id]
    return (mine[0].options, mine[0].readonly) if mine else None


def follow(mount_id: int, since: Flags, current: Callable[[], AtimePolicy],
           changed: Callable[[AtimePolicy], None]) -> None:
    """Call *changed* with the new policy whenever mount *mount_id*'s flags change from
    *since* (the flags as the mount was made: a remount may come before this thread's
    first look) to a policy other than *current* (our own ``set_atime_flags`` changes the
    flags, not the policy); return when the mount is gone. Runs in a thread of its own,
    blocked in poll(2) between changes."""
    last = since
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
            if now != last and policy_of(mine[0]) != current():
                changed(policy_of(mine[0]))
            last = now
            poller.poll()
