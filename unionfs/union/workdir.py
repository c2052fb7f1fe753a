"""The overlay's work directory: prepared at mount, and how it tells which markers to write.

``WORKDIR/work`` holds copies while they are built and is emptied at every mount, as the
kernel's is; ``WORKDIR/unionfs-index`` holds the hard link index (``union.hardlinks``) and
is kept. Everything is examined through the workdir's own descriptor: nothing there is
followed, a symlink in place of a subdirectory is removed.
"""

from __future__ import annotations

import os
import stat

from unionfs import layerfmt
from unionfs.safepath import DirFdCache, LayerDir, join

WORK_SUBDIR = "work"
INDEX_SUBDIR = "unionfs-index"  # hard links that survive copy-up (see union.hardlinks)


def prepare_workdir(workdir: str) -> str:
    """``WORKDIR/work``, emptied of what an earlier mount left (as the kernel does).

    ``work`` is examined and emptied through the workdir's own descriptor: if it is not a
    real directory (a symlink, a file) it is removed, never followed, and made again.
    """
    return _subdir(workdir, WORK_SUBDIR, empty=True)


def prepare_subdir(workdir: str, name: str) -> str:
    """``WORKDIR/name`` as a real directory (made if missing; anything else there, a
    symlink included, is removed, never followed). Its contents are kept."""
    return _subdir(workdir, name, empty=False)


def _subdir(workdir: str, name: str, empty: bool) -> str:
    cache = DirFdCache(8)
    parent = LayerDir(workdir, cache)
    raw = name.encode()
    try:
        st = parent.lstat(raw)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            parent.unlink(raw)
            st = None
        if st is None:
            parent.mkdir(raw, 0o700)
        elif empty:
            for child, _ in list(parent.scandir(raw)):
                parent.remove_tree(join(raw, child))
    finally:
        parent.close()
        cache.close()
    return os.path.join(workdir, name)


def probe_style(work: LayerDir) -> layerfmt.MarkerStyle:
    """The kernel's marker forms where this filesystem and our privileges allow them."""
    name = b"#unionfs-probe-%d" % os.getpid()
    device = True
    try:
        work.mknod(name, stat.S_IFCHR, 0)
    except PermissionError:
        device = False
    else:
        work.unlink(name)
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
