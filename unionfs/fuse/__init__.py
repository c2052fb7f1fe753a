"""The pyfuse3 adapter: the only package that imports pyfuse3 or raises FUSEError.

``inodes`` (the inode table and lookup counts), ``entry`` (EntryAttributes from resolved
entries), ``handles`` (open files and directory snapshots), ``ops`` (the Operations class:
the read side), mixing in ``writes`` (create, remove, rename) and ``changes`` (write,
setattr, xattrs, with ``killpriv``'s set-gid rules), ``mount`` (running the session).
"""
