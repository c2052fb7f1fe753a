"""The pyfuse3 adapter: the only package that imports pyfuse3 or raises FUSEError.

``inodes`` (the inode table and lookup counts), ``handles`` (open files and directory
snapshots), ``entry`` (EntryAttributes from resolved entries), ``edge`` (the error
boundary of every handler), ``state`` (``MountState``: what every handler shares, and the
bookkeeping of a change), and the handler groups, siblings over ``MountState`` that use
nothing of each other: ``reading`` (lookup, getattr, readdir, xattrs), ``files`` (open,
read, write, fsync), ``names`` (create, link, remove, rename), ``metadata`` (setattr,
xattrs, with ``killpriv``'s set-id rules), ``space`` (fallocate, lseek, copy_file_range),
``fileattr`` (ioctl: inode flags) and ``tmpfile`` (O_TMPFILE); ``kernelcache`` says which
listings and symlink targets the kernel keeps, ``passthrough`` which open files it serves
from a backing file (``-o passthrough``); ``ops`` assembles them into
``UnionOperations``; ``mount`` runs the session; ``triostart`` imports trio first, without
the process its import starts.
"""

from unionfs.fuse import triostart

triostart.import_trio()  # before any module of the package imports trio or pyfuse3
