"""Files made with no name (open(2) with O_TMPFILE; the kernel's ovl_tmpfile) and the name
they may get later (linkat(2) of the open file; the kernel's ovl_link of such a file).

The parent is copied up and the file is made in it with the upper filesystem's own
O_TMPFILE, so the upper decides what it decides for any new file there (a default ACL);
the file then lives on its descriptor alone (``held``) until it is named, as any other new
entry is (``create``: over a whiteout through the work directory). Holds no state.
"""

from __future__ import annotations

import errno
import os
import stat

from unionfs.union import acl
from unionfs.union.copyup import copy_up
from unionfs.union.create import Owner, check_new, create_entry
from unionfs.union.held import Held
from unionfs.union.stack import Resolved, Stack, upper_of


def make(
    stack: Stack, parent: Resolved, mode: int, flags: int, owner: Owner, umask: int | None
) -> tuple[Resolved, int]:
    """A new file with no name in directory *parent*, open with *flags*, of permission
    bits *mode* (masked by *umask* unless the upper parent has a default ACL), owned by
    *owner* (the group of a set-gid parent). Returns the parent copied up and the
    descriptor."""
    if not parent.is_dir:
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    parent = copy_up(stack, parent)
    upper = upper_of(stack)
    bits = stat.S_IMODE(mode)
    default = upper.dir_getxattr(parent.path, acl.DEFAULT)
    if default is None and umask is not None:
        bits &= ~umask
    fd = upper.tmpfile(parent.path, flags, bits & 0o777)
    try:
        st = os.fstat(fd)
        gid = parent.st.st_gid if parent.st.st_mode & stat.S_ISGID else owner.gid
        if (st.st_uid, st.st_gid) != (owner.uid, gid):
            try:
                os.fchown(fd, owner.uid, gid)
            except OSError as exc:  # an unprivileged daemon keeps its own ids, as
                if exc.errno not in (errno.EPERM, errno.EINVAL):  # ``chown_if_allowed``
                    raise
        if bits & ~0o777:  # set-id and sticky bits, which a chown would have cleared
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | bits & ~0o777)
    except BaseException:
        os.close(fd)
        raise
    return parent, fd


def link(stack: Stack, held: Held, parent: Resolved, name: bytes) -> Resolved:
    """Name *name* in *parent* for the unnamed file *held*; returns the new entry."""
    over_whiteout = check_new(stack, parent, name)
    return create_entry(
        stack, parent, name, lambda layer, path, _: layer.link_open(held.fd, path),
        None, None, checked=True, over_whiteout=over_whiteout,
    )  # fmt: skip
