"""Access times of the upper layer, as kernel overlayfs keeps them.

The kernel reads its layers without touching their atimes (O_NOATIME) and then updates the
atime of an upper file or directory it read by the overlay mount's own flags only: it
clears the atime flags of its private clone of the upper mount (``ovl_get_upper``), so the
overlay's ``noatime``/``relatime``/``strictatime``/``nodiratime`` decide (``touch_atime``,
``ovl_update_time``). Lower layers' atimes never change. A FUSE mount's atime flags do
nothing (the kernel's FUSE marks its inodes S_NOATIME), so the daemon applies them here:
``needs_update`` is the kernel's rule, ``Toucher`` makes the update the way the kernel does
(a read through a strictatime clone of the upper mount: the ctime stays).
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

from unionfs import mountattrs
from unionfs.safepath import LayerDir, openat2

DAY_NS = 24 * 3600 * 10**9


@dataclass(frozen=True, slots=True)
class AtimePolicy:
    """``mode`` is "relatime", "noatime" or "strictatime"; a read-only mount never
    updates an atime (the kernel's touch_atime needs write access to the mount)."""

    mode: str = "relatime"
    nodiratime: bool = False
    readonly: bool = False

    @classmethod
    def from_flags(cls, words: tuple[str, ...] | list[str], readonly: bool = False) -> AtimePolicy:
        """From mount flags as mountinfo shows them (``relatime``, ``noatime``,
        ``nodiratime``; neither atime word means strictatime)."""
        mode = "noatime" if "noatime" in words else "relatime" if "relatime" in words else (
            "strictatime"
        )
        return cls(mode, "nodiratime" in words, readonly)


RELATIME = AtimePolicy()  # the kernel's default


def needs_update(policy: AtimePolicy, st: os.stat_result, is_dir: bool, now_ns: int) -> bool:
    """Whether reading the entry *st* updates its atime now (``atime_needs_update`` and
    ``relatime_need_update`` in the kernel's fs/inode.c)."""
    if policy.readonly or policy.mode == "noatime" or (is_dir and policy.nodiratime):
        return False
    if policy.mode == "relatime":
        atime = st.st_atime_ns
        if atime <= st.st_mtime_ns or atime <= st.st_ctime_ns:
            return True
        return now_ns - atime >= DAY_NS
    return st.st_atime_ns != now_ns


def strictatime_clone(fd: int) -> int | None:
    """A clone of the mount at directory *fd* with its atime flags cleared (strictatime);
    None where this process may not make one. The kernel's ``ovl_get_upper`` does the same
    for its upper layer."""
    cleared = mountattrs.MOUNT_ATTR__ATIME | mountattrs.MOUNT_ATTR_NODIRATIME
    return mountattrs.clone_mount(fd, mountattrs.MOUNT_ATTR_STRICTATIME, cleared)


FRESH_MAX = 4096  # entries remembered as needing no relatime update (then forgotten)


class Toucher:
    """Updates atimes of the upper layer's entries when the policy says so.

    Invariant: ``policy`` is replaced whole (a remount), never changed in place. Where no
    strictatime clone can be made (an unprivileged daemon), an update is a read through
    the upper's own mount, whose flags then also apply (usually relatime).

    Reads are the hot path: under noatime nothing is asked, and under relatime an entry
    found needing no update is remembered until its atime is a day old or anything changes
    through the mount (``changed``): a read of it then costs no system call.
    """

    def __init__(self, upper: LayerDir, policy: AtimePolicy) -> None:
        self.upper = upper
        self.policy = policy
        self._clone = strictatime_clone(upper.root_fd)
        # path -> the time (ns) before which relatime updates nothing, under _fresh_policy
        self._fresh: dict[bytes, int] = {}
        self._fresh_policy = policy

    def changed(self) -> None:
        """Something changed through the mount: an mtime or ctime may have passed an atime
        (or a name now means another entry), so relatime asks again."""
        if self._fresh:
            self._fresh.clear()

    def close(self) -> None:
        if self._clone is not None:
            os.close(self._clone)
            self._clone = None

    def accessed(self, path: bytes, fd: int | None = None, is_dir: bool = False) -> None:
        """Entry *path* of the upper layer was read (*fd*: a descriptor of it, for its
        attributes; *is_dir*: known to be a directory); update its atime as the kernel
        would."""
        policy = self.policy
        if policy.mode == "noatime" or policy.readonly or (is_dir and policy.nodiratime):
            return
        now = time.time_ns()  # the vDSO: no system call
        if policy.mode == "relatime":
            if policy is not self._fresh_policy:
                self._fresh.clear()
                self._fresh_policy = policy
            until = self._fresh.get(path)
            if until is not None and now < until:
                return
        st = os.fstat(fd) if fd is not None else self.upper.lstat(path)
        if st is None or stat.S_ISLNK(st.st_mode):
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if not needs_update(policy, st, is_dir, now):
            if policy.mode == "relatime" and policy is self._fresh_policy:
                if len(self._fresh) >= FRESH_MAX:
                    self._fresh.clear()
                self._fresh[path] = st.st_atime_ns + DAY_NS
            return
        try:
            self._touch(path, is_dir, st.st_size)
        except FileNotFoundError:
            pass  # removed meanwhile: nothing to update

    def _touch(self, path: bytes, is_dir: bool, size: int) -> None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if is_dir else 0)
        if self._clone is not None:
            fd = openat2(self._clone, path or b".", flags)
        elif path:
            base, name = self.upper.at(path)
            fd = openat2(base, name, flags)
        else:
            fd = openat2(self.upper.root_fd, b".", flags)
        try:
            if is_dir:
                # getdents updates the atime however little it reads (iterate_dir)
                with os.scandir(fd) as entries:
                    next(entries, None)
            else:
                os.pread(fd, 1, size)  # at the end: no data, file_accessed all the same
        finally:
            os.close(fd)
