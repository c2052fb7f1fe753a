"""The FUSE face of a stack: ``UnionOperations``, assembled from sibling handler groups.

Each group is a subclass of ``state.MountState`` (the stack, the inode and handle tables,
the mutation lock, and the bookkeeping of a change) and uses nothing of another group:
``reading`` (lookups, attributes, listings, xattrs), ``files`` (open, read, write, fsync),
``names`` (create, link, remove, rename), ``metadata`` (setattr, xattrs), ``space``
(fallocate, lseek, copy_file_range), ``fileattr`` (ioctl: inode flags) and ``tmpfile``
(O_TMPFILE). This module only puts them together and says what the kernel is told about
the whole.

Concurrency: pyfuse3 runs every handler as a task on one trio thread; between two awaits
a handler runs alone, so the inode and handle tables need no locks as long as no handler
awaits in the middle of changing them. Every change of a layer holds the mutation lock,
also while its copy-up runs in a worker thread.

Errors: every handler goes through ``edge.handler``. An ``OSError`` becomes its errno; any
other exception is a bug, logged with its traceback and answered EIO, because pyfuse3 lets
any exception other than FUSEError end the whole mount. ``forget`` never raises.
"""

from __future__ import annotations

from unionfs.fuse import features, kernelcache
from unionfs.fuse.fileattr import FileAttrHandlers
from unionfs.fuse.files import FileHandlers
from unionfs.fuse.metadata import MetadataHandlers
from unionfs.fuse.names import NameHandlers
from unionfs.fuse.reading import ReadHandlers
from unionfs.fuse.space import SpaceHandlers
from unionfs.fuse.tmpfile import TmpfileHandlers
from unionfs.union.stack import Resolved


class UnionOperations(
    ReadHandlers, FileHandlers, NameHandlers, MetadataHandlers, SpaceHandlers, FileAttrHandlers,
    TmpfileHandlers,
):
    """Serves one ``Stack``: ``UnionOperations(stack, owners, atime)`` (see ``MountState``)."""

    # Writes gather in the kernel's page cache and arrive in ~1 MiB requests (FACTS.md).
    enable_writeback_cache = True
    # POSIX ACLs: the kernel checks permissions with them (it asks getxattr for
    # system.posix_acl_access once an inode) and leaves their storage to us, as kernel
    # overlayfs honours the ACLs of its layers. Without this a user granted access by an
    # ACL gets EACCES.
    enable_acl = True
    # Modes of new entries arrive unmasked, the umask beside them: a default ACL of the
    # parent takes the umask's place (``create``), as under kernel overlayfs. Without the
    # binding's support the kernel masks them, and a default ACL can only narrow further.
    enable_dont_mask = "dont_mask" in features.available()
    # The kernel keeps symlink targets; names.py drops one whose symlink lost its name.
    enable_cache_symlinks = kernelcache.CACHE_SYMLINKS
    # We clear set-id bits on write, truncate and chown where the kernel says (kill-priv
    # v2, ``killpriv``), so it stops asking getxattr(security.capability) before every
    # write (the upper's own kernel drops the capability when we write or truncate).
    enable_killpriv_v2 = "killpriv_v2" in features.available()
    # No file handles (name_to_handle_at: EOPNOTSUPP), as kernel overlayfs without
    # nfs_export: the kernel could decode ours only while it caches the inode, and an
    # inode's number is not enough to find it again after that (or after a remount).
    no_export_support = True
    # Lookups and listings of one directory may be in flight at once (the kernel takes the
    # directory's lock shared for them; changes still take it alone). Neither handler
    # changes anything, and one that waits (a lazily pulled layer) no longer holds up every
    # other lookup in its directory. libfuse 3.17 sends the flag only when asked.
    enable_parallel_dirops = True


def resolved_of(ops: UnionOperations, inode: int) -> Resolved:
    """For tests and tools: how inode *inode* resolves now."""
    return ops.inodes.get(inode).res
