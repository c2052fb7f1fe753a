"""``mount -o remount,...`` of a unionfs mount: mount(8) hands it to the helper with the
mount's current flags merged with the new ones (``ro,nosuid,relatime,remount,user_id=0,...``).

Only VFS flags change, as on any FUSE mount and on kernel overlayfs (which ignores every
other option of a remount): ro/rw, nosuid, nodev, noexec, sync, dirsync and the atime flags.
The kernel enforces a read-only mount itself (writes fail with EROFS before reaching the
daemon); the daemon follows its mount's atime flags (``unionfs.fuse.vfsflags``). A mount
without an upper layer stays read-only: EROFS, as from the kernel's ``ovl_reconfigure``.
"""

from __future__ import annotations

import os

from unionfs import livemounts, mountopts
from unionfs.errors import UserError
from unionfs.runtime import mountflags as ms
from unionfs.runtime.namespaces import mount

MOUNT_FAILED = 32  # mount(8)'s exit status for a failed mount

# word -> (bits to set, bits to clear); any other word is the filesystem's, and ignored
FLAGS = {
    "ro": (ms.MS_RDONLY, 0), "rw": (0, ms.MS_RDONLY),
    "nosuid": (ms.MS_NOSUID, 0), "suid": (0, ms.MS_NOSUID),
    "nodev": (ms.MS_NODEV, 0), "dev": (0, ms.MS_NODEV),
    "noexec": (ms.MS_NOEXEC, 0), "exec": (0, ms.MS_NOEXEC),
    "sync": (ms.MS_SYNCHRONOUS, 0), "async": (0, ms.MS_SYNCHRONOUS),
    "dirsync": (ms.MS_DIRSYNC, 0),
    "noatime": (ms.MS_NOATIME, 0), "atime": (0, ms.MS_NOATIME),
    "nodiratime": (ms.MS_NODIRATIME, 0), "diratime": (0, ms.MS_NODIRATIME),
    "relatime": (ms.MS_RELATIME, 0), "norelatime": (0, ms.MS_RELATIME),
    "strictatime": (ms.MS_STRICTATIME, 0), "nostrictatime": (0, ms.MS_STRICTATIME),
    "lazytime": (ms.MS_LAZYTIME, 0), "nolazytime": (0, ms.MS_LAZYTIME),
    "nosymfollow": (ms.MS_NOSYMFOLLOW, 0), "symfollow": (0, ms.MS_NOSYMFOLLOW),
    "bind": (ms.MS_BIND, 0),  # the mount's own flags only, not the filesystem's
    "remount": (ms.MS_REMOUNT, 0),
}  # fmt: skip


def words(option_strings: list[str]) -> list[str]:
    return [w for text in option_strings for w in mountopts.split_options(text)]


is_remount = mountopts.is_remount


def remount_flags(option_strings: list[str]) -> int:
    """The mount(2) flags of a remount with these options (later words win)."""
    flags = 0
    for word in words(option_strings):
        on, off = FLAGS.get(word, (0, 0))
        flags = (flags | on) & ~off
    return flags | ms.MS_REMOUNT


def remount(option_strings: list[str], mountpoint: str, resolved: str) -> int:
    """Remount the unionfs mount at *resolved* (*mountpoint* as the user wrote it)."""
    flags = remount_flags(option_strings)
    found = livemounts.mounted_at(resolved)
    if found is None:
        raise UserError(f"cannot remount {mountpoint}: not mounted", MOUNT_FAILED)
    if found.fstype != "fuse.unionfs":
        raise UserError(f"cannot remount {mountpoint}: a {found.fstype} mount, not a unionfs "
                        "one", MOUNT_FAILED)  # fmt: skip
    if not flags & (ms.MS_RDONLY | ms.MS_BIND):
        record = livemounts.announced(found.dev)
        if record is not None and record.upper is None:
            raise UserError(f"cannot remount {mountpoint} read-write: it has no upperdir "
                            "(EROFS)", MOUNT_FAILED)  # fmt: skip
    try:
        mount(found.source, resolved, None, flags, "")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UserError(f"cannot remount {mountpoint}: {reason}", MOUNT_FAILED) from None
    return 0
