"""Pure overlay rules over a stack of layer directories: no pyfuse3, no trio, no lmdb.

One concern per module, as the kernel's fs/overlayfs does it, each importing only those
listed before it (no module imports one after it: no circle): ``acl`` (POSIX ACL
arithmetic, posix_acl.c); ``workdir`` (the work directory, the marker style) and
``stack`` (the ``Layer`` protocol, ``Stack``, ``Resolved`` entries, the copy-up report);
``redirect`` (reading and recording ``overlay.redirect``) and ``hardlinks`` (the
``index=on`` link index: what a lower name shows, and linking names up); ``lookup``
(namei: a pure query) and ``readdir`` (merged listings); ``whiteout`` (writing markers);
``copybuild`` (building one copy) and ``copyup`` (copy_up.c); ``create``, ``link``,
``remove``, ``rename`` (dir.c); ``held`` (a file with no name left, reached by
descriptor) and ``attrs`` (inode.c, xattrs); ``flatten`` (an upper spelled out for an
OCI layer).
Queries never write; every change reports what it copied up (``Stack.take_copies``).
"""
