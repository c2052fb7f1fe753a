"""The overlay's work directory: prepared at mount, and how it tells which markers to write.

``WORKDIR/work`` holds copies while they are built and is made afresh (mode 000, no ACL)
at every mount, as the kernel's is; ``WORKDIR/unionfs-index`` holds the hard link index
(``union.hardlinks``) and is kept. Everything is examined through the workdir's own
descriptor: nothing there is followed, a symlink in place of a subdirectory is removed.
"""

from __future__ import annotations

import errno
import os
import stat

from unionfs import layerfmt
from unionfs.safepath import DirFdCache, LayerDir

WORK_SUBDIR = "work"
INDEX_SUBDIR = "unionfs-index"  # hard links that survive copy-up (see union.hardlinks)


def prepare_workdir(workdir: str) -> str:
    """``WORKDIR/work``, made afresh at every mount as the kernel does (ovl_workdir_create):
    what an earlier mount left is removed, and the new directory has mode 000 and no POSIX
    ACL, so nothing built in it inherits a default ACL of WORKDIR (a copy-up would keep it).

    ``work`` is examined and removed through the workdir's own descriptor: if it is not a
    real directory (a symlink, a file) it is removed, never followed.
    """
    return _subdir(workdir, WORK_SUBDIR, empty=True)


def prepare_subdir(workdir: str, name: str) -> str:
    """``WORKDIR/name`` as a real directory (made if missing, private as ``work`` is;
    anything else there, a symlink included, is removed, never followed). Its contents are
    kept."""
    return _subdir(workdir, name, empty=False)


ACL_XATTRS = (b"system.posix_acl_default", b"system.posix_acl_access")


def _subdir(workdir: str, name: str, empty: bool) -> str:
    cache = DirFdCache(8)
    parent = LayerDir(workdir, cache)
    raw = name.encode()
    try:
        st = parent.lstat(raw)
        if st is not None and (empty or not stat.S_ISDIR(st.st_mode)):
            if stat.S_ISDIR(st.st_mode) and not _usable(parent, raw):
                parent.chmod(raw, 0o700)  # an earlier mount's (mode 000), ours to empty
            parent.remove_tree(raw)
            st = None
        if st is None:
            parent.mkdir(raw, 0)
            _make_private(parent, raw)
    finally:
        parent.close()
        cache.close()
    return os.path.join(workdir, name)


def _make_private(parent: LayerDir, name: bytes) -> None:
    """No ACL and mode 000, as the kernel leaves its work directories; mode 700 where this
    process could not then use it (an unprivileged daemon has no CAP_DAC_OVERRIDE)."""
    for acl in ACL_XATTRS:
        try:
            parent.removexattr(name, acl)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                raise
    parent.chmod(name, 0)
    if not _usable(parent, name):
        parent.chmod(name, 0o700)


def _usable(parent: LayerDir, name: bytes) -> bool:
    base, last = parent.at(name)
    return os.access(last, os.W_OK | os.X_OK | os.R_OK, dir_fd=base)


def probe_style(work: LayerDir, userxattr: bool = False) -> layerfmt.MarkerStyle:
    """The kernel's marker forms where this filesystem and our privileges allow them; with
    *userxattr*, its user.overlay.* ones (as the kernel writes them then)."""
    name = b"#unionfs-probe-%d" % os.getpid()
    device = True
    try:
        work.mknod(name, stat.S_IFCHR, 0)
    except PermissionError:
        device = False
    else:
        work.unlink(name)
    if userxattr:
        return layerfmt.MarkerStyle(device, b"user.overlay.opaque", not device)
    xattr = b"trusted.overlay.opaque"
    work.mkdir(name, 0o700)
    try:
        work.setxattr(name, xattr, b"y")
    except OSError:
        xattr = b"user.overlay.opaque"
    finally:
        work.rmdir(name)
    if device and xattr.startswith(b"trusted."):
        return layerfmt.KERNEL_STYLE
    return layerfmt.MarkerStyle(device, xattr, not xattr.startswith(b"trusted."))
