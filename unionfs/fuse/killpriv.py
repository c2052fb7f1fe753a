"""The set-id clearing of a write, truncate or chown that the kernel's FUSE client leaves
to us (all of it under FUSE_HANDLE_KILLPRIV_V2; else the set-group-ID part below).

On a write, truncate or chown the VFS clears S_ISGID of a file without group-execute
when the caller is neither in the file's group nor holds CAP_FSETID
(``setattr_should_drop_sgid``); for a chown that is a mode change, so a caller who does not
own the file gets EPERM. FUSE's ``fuse_setattr`` drops that part of the request and clears
S_ISGID only when group-execute is set too, so the request reaches the filesystem without
it. Kernel overlayfs follows the VFS, and so do we, here. An open with O_TRUNC never comes
as a setattr: its whole rule is ours (``suidgid_after``), as is a write's and a truncate's
with kill-priv v2, where the kernel only says when to clear (``cleared``). Setting an
access ACL clears S_ISGID on the same terms as chmod (``posix_acl_update_mode``, files and
directories alike); FUSE asks the filesystem to (FUSE_SETXATTR_ACL_KILL_SGID), which
pyfuse3 does not pass on. FUSE tells the caller's uid, gid and pid only; the supplementary
groups and capabilities come from ``/proc/PID/status``. Owns no state.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

CAP_FOWNER = 3
CAP_FSETID = 4


@dataclass(frozen=True, slots=True)
class Caller:
    uid: int
    gid: int
    groups: frozenset[int]
    caps: int

    @classmethod
    def of(cls, uid: int, gid: int, pid: int) -> Caller:
        """The process *pid* that sent a request as (uid, gid); a process that is gone
        counts as root when uid is 0 and as having no other group."""
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            groups = frozenset(int(g) for g in fields.get("Groups", "").split())
            caps = int(fields.get("CapEff", "0").strip(), 16)
        except (OSError, ValueError):
            groups, caps = frozenset(), (~0 if uid == 0 else 0)
        return cls(uid, gid, groups, caps)

    def capable(self, cap: int) -> bool:
        return bool(self.caps & (1 << cap))


def sgid_after(
    mode: int, file_uid: int, file_gid: int, uid: int, gid: int, pid: int, chown: bool
) -> int:
    """The mode a write, truncate or (with *chown*) chown by (uid, gid, pid) leaves to a
    file of *mode* (the mode it is about to have) owned by *file_uid*:*file_gid*."""
    if not mode & stat.S_ISGID or mode & stat.S_IXGRP or stat.S_ISDIR(mode):
        return mode  # with group-execute the kernel's FUSE client clears it itself
    if gid == file_gid:
        return mode
    caller = Caller.of(uid, gid, pid)
    if file_gid in caller.groups or caller.capable(CAP_FSETID):
        return mode
    if chown and uid != file_uid and not caller.capable(CAP_FOWNER):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    return mode & ~stat.S_ISGID


def acl_keeps_sgid(file_gid: int, uid: int, gid: int, pid: int) -> bool:
    """Whether setting an access ACL by (uid, gid, pid) leaves S_ISGID to an entry of group
    *file_gid*: only for a member of the group or a holder of CAP_FSETID."""
    if gid == file_gid:
        return True
    caller = Caller.of(uid, gid, pid)
    return file_gid in caller.groups or caller.capable(CAP_FSETID)


def suidgid_after(mode: int, file_gid: int, uid: int, gid: int, pid: int) -> int:
    """The mode a write or truncate by (uid, gid, pid) leaves to a file of *mode* in group
    *file_gid*: the VFS's ``setattr_should_drop_suidgid``. A caller with CAP_FSETID keeps
    both bits; any other loses set-user-ID, and set-group-ID if the group may execute the
    file or the caller is not in its group."""
    if not stat.S_ISREG(mode) or not mode & (stat.S_ISUID | stat.S_ISGID):
        return mode
    caller = Caller.of(uid, gid, pid)
    if caller.capable(CAP_FSETID):
        return mode
    kill = stat.S_ISUID
    if mode & stat.S_IXGRP or (gid != file_gid and file_gid not in caller.groups):
        kill |= stat.S_ISGID
    return mode & ~kill


def cleared(mode: int) -> int:
    """*mode* after the kernel's kill-priv v2 request (FUSE_WRITE_KILL_SUIDGID,
    FATTR_KILL_SUIDGID): without set-user-ID, and without set-group-ID where the group may
    execute the file (the rest of the set-group-ID rule needs the caller: ``sgid_after``)."""
    if not stat.S_ISREG(mode):
        return mode
    kill = stat.S_ISUID | (stat.S_ISGID if mode & stat.S_IXGRP else 0)
    return mode & ~kill
