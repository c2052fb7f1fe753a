"""The kernel's caches that a mount turns on beyond entries, attributes and file pages:
directory listings (FOPEN_CACHE_DIR on every opendir) and symlink targets
(FUSE_CAP_CACHE_SYMLINKS), when the binding offers them (``features``).

The kernel drops a cached listing itself when a request of its own changes the directory
(create, mknod, mkdir, symlink, link, unlink, rmdir, rename: ``fuse_dir_changed``) or its
mtime changes. What changes behind its back is ours to drop: the ``..`` of a directory
that moved, the d_ino of a name whose copy-up broke a lower hard link (``state``), and
the target of a symlink that lost or changed its name. Holds no state.
"""

from __future__ import annotations

import stat

import pyfuse3

from unionfs.fuse import features
from unionfs.union.stack import Resolved

_AVAILABLE = features.available()
CACHE_READDIR = "cache_readdir" in _AVAILABLE
CACHE_SYMLINKS = "cache_symlinks" in _AVAILABLE


def opened_dir(fh: int) -> int | pyfuse3.FileInfo:
    """The answer to an opendir that got handle *fh*: the kernel keeps the listing it reads,
    across opens, until it is dropped."""
    if not CACHE_READDIR:
        return fh
    return pyfuse3.FileInfo(fh=fh, cache_readdir=True, keep_cache=True)


def keeps_pages(res: Resolved) -> bool:
    """The kernel may keep pages of *res* that are not file data: its listing (a directory)
    or its target (a symlink)."""
    mode = res.st.st_mode
    return (CACHE_READDIR and stat.S_ISDIR(mode)) or (CACHE_SYMLINKS and stat.S_ISLNK(mode))
