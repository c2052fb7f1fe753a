"""Creating entries (the kernel's dir.c, create side).

The parent is copied up first. A name that only a whiteout hides is created in the work
directory and moved over the whiteout in one rename; a directory made that way is opaque,
so the lower directory it replaces does not show through it (as overlayfs does). Given the
caller's umask (FUSE_DONT_MASK), it applies only where the upper parent has no default ACL;
where it has one, the ACL decides, as the upper filesystem decides it for the kernel's
overlay (``ovl_create_upper``; over a whiteout ``posix_acl_create``, here ``acl.inherit``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from unionfs import layerfmt
from unionfs.safepath import RENAME_EXCHANGE, LayerDir, join
from unionfs.union import acl, whiteout
from unionfs.union.copybuild import chown_if_allowed
from unionfs.union.copyup import copy_up
from unionfs.union.lookup import Observation, check_name, merge, observe
from unionfs.union.stack import Resolved, Stack, upper_of


@dataclass(frozen=True, slots=True)
class Owner:
    """Who asks: the new entry belongs to them (the group may come from a set-gid parent)."""

    uid: int
    gid: int


def _refuse_marker_name(name: bytes) -> None:
    # .wh.* names are markers in every layer; letting a user create one would hide a file.
    if layerfmt.is_marker_name(name):
        raise OSError(errno.EINVAL, "names starting with .wh. are reserved for whiteouts")


def check_new(stack: Stack, parent: Resolved, name: bytes) -> bool | None:
    """Check that *name* can be created in *parent*; changes nothing. Returns False when
    the lookup saw that the upper layer holds nothing of it (no whiteout either), else
    None: ``whiteout.has_whiteout`` then tells (the parent may have no upper part yet)."""
    check_name(name)
    _refuse_marker_name(name)
    if not parent.is_dir:
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    if name in (b".", b"..", b"") or b"/" in name:
        return None  # never an entry (``lookup``); the creation itself fails
    seen: list[Observation] = []

    def observed(index: int, path: bytes) -> Observation:
        found = observe(stack, index, path)
        if index == 0:
            seen.append(found)
        return found

    if merge(stack, parent, name, observed) is not None:
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
    # The lookup looked at the upper's part first, at the new entry's own path: nothing
    # there, not even a ``.wh.`` file, is the common case. A whiteout (either form) is
    # left to ``whiteout.has_whiteout``.
    upper_here = parent.top == 0 and parent.path_in(0) == parent.path
    return False if upper_here and seen and seen[0] is None else None


def prepare(stack: Stack, parent: Resolved, name: bytes) -> tuple[Resolved, bool | None]:
    """Check that *name* can be created in *parent* and copy the parent up; returns the
    parent copied up and what ``check_new`` says of a whiteout there."""
    over_whiteout = check_new(stack, parent, name)
    return copy_up(stack, parent), over_whiteout


Make = Callable[[LayerDir, bytes, int], None]  # make(layer, path, permission bits)


def create_entry(
    stack: Stack,
    parent: Resolved,
    name: bytes,
    make: Make,
    owner: Owner | None,
    mode: int | None,
    umask: int | None = None,
    checked: bool = False,
    over_whiteout: bool | None = None,
) -> Resolved:
    """Create *name* in *parent* with ``make(layer, path, bits)``, owned by *owner*.

    *mode* (permission bits, None for symlinks) is set after the owner, since chown clears
    set-id bits. *umask*: the caller's, if *mode* has not been masked yet (None: it has).
    *checked*: the caller ran ``check_new`` already, which said *over_whiteout* (the checks
    are not repeated). Returns the new entry resolved.
    """
    if not checked:
        parent, over_whiteout = prepare(stack, parent, name)
    else:
        parent = copy_up(stack, parent)
    upper = upper_of(stack)
    path = join(parent.path, name)
    ids = None
    if owner is not None:
        gid = parent.st.st_gid if parent.st.st_mode & stat.S_ISGID else owner.gid
        ids = (owner.uid, gid)
    default = None
    if mode is not None:
        default = upper.dir_getxattr(parent.path, acl.DEFAULT)
        if default is None and umask is not None:
            mode &= ~umask
    # Under a default ACL the new entry's permission bits are the ACL's to decide (from
    # a mode the kernel masked already, without FUSE_DONT_MASK: it can only narrow them).
    inherit = default is not None
    if over_whiteout is None:
        over_whiteout = whiteout.has_whiteout(stack, path)
    if not over_whiteout:
        make(upper, path, mode or 0)
        try:
            st = _finish(upper, path, ids, mode, inherit)
        except BaseException:
            upper.unlink(path) if ids is None else upper.remove_tree(path)
            raise
        return Resolved(path, (0,), st)
    work = stack.work
    assert work is not None
    temp = stack.temp_name()
    try:
        if default is not None and mode is not None:
            # The work directory has no default ACL: what the parent's would give is
            # set by hand, as the kernel's ovl_create_over_whiteout does.
            _make_inherited(work, temp, make, default, mode)
        else:
            make(work, temp, mode or 0)
        made = _finish(work, temp, ids, mode, inherit)
        if stat.S_ISDIR(made.st_mode):
            whiteout.set_opaque(stack, work, temp)
        if stat.S_ISDIR(made.st_mode) and upper.lstat(path) is not None:
            # A directory cannot be renamed over the whiteout device: swap them, then
            # drop the whiteout (the kernel's ovl_create_over_whiteout does the same).
            work.rename_to(temp, upper, path, RENAME_EXCHANGE)
        else:
            work.rename_to(temp, upper, path)
    except BaseException:
        work.remove_tree(temp)
        raise
    work.remove_tree(temp)
    whiteout.remove_whiteout_file(stack, path)
    now = upper.lstat(path)
    assert now is not None
    return Resolved(path, (0,), now)


def _make_inherited(work: LayerDir, temp: bytes, make: Make, default: bytes, mode: int) -> None:
    """Make *temp* with what default ACL *default* gives an entry of *mode*."""
    make(work, temp, mode)
    st = work.lstat(temp)
    assert st is not None
    got = acl.inherit(default, stat.S_IFMT(st.st_mode) | mode)
    if stat.S_IMODE(st.st_mode) & 0o777 != got.mode & 0o777:
        work.chmod(temp, got.mode & 0o777)
    if got.access is not None:
        work.setxattr(temp, acl.ACCESS, got.access)
    if got.default is not None:
        work.setxattr(temp, acl.DEFAULT, got.default)


def _finish(
    layer: LayerDir, path: bytes, ids: tuple[int, int] | None, mode: int | None, inherit: bool
) -> os.stat_result:
    """Owner, then mode (chown clears set-id bits); each only if it would change anything:
    creating many files should cost one syscall each, not three. With *inherit*, the
    permission bits the entry was made with (from a default ACL) stay; only set-id and
    sticky bits of *mode* are added. Returns the entry's lstat once done."""
    st = layer.lstat(path)
    assert st is not None
    if ids is not None and ids != (st.st_uid, st.st_gid):
        chown_if_allowed(layer, path, *ids)
        st = layer.lstat(path)
        assert st is not None
    if mode is None:
        return st
    if inherit:
        mode = stat.S_IMODE(st.st_mode) & 0o777 | mode & ~0o777
    if stat.S_IMODE(st.st_mode) != mode:
        layer.chmod(path, mode)
        st = layer.lstat(path)
        assert st is not None
    return st


# Entries are created with their final permission bits (so that usually nothing else is
# needed), except set-id and sticky bits, which chown would clear: chmod adds those after.
# The entry is empty or new while it may still belong to the daemon: nothing can leak.
def _first_mode(mode: int) -> int:
    return stat.S_IMODE(mode) & 0o777


def make_dir(layer: LayerDir, path: bytes, mode: int) -> None:
    layer.mkdir(path, _first_mode(mode))


def make_node(kind: int, rdev: int) -> Make:
    return lambda layer, path, mode: layer.mknod(path, kind | _first_mode(mode), rdev)


def make_symlink(target: bytes) -> Make:
    return lambda layer, path, mode: layer.symlink(target, path)


def make_file(layer: LayerDir, path: bytes, mode: int) -> None:
    os.close(layer.create(path, os.O_WRONLY, _first_mode(mode)))


def mkdir(stack: Stack, parent: Resolved, name: bytes, mode: int, owner: Owner,
          umask: int | None = None) -> Resolved:  # fmt: skip
    bits = stat.S_IMODE(mode) | (parent.st.st_mode & stat.S_ISGID)
    return create_entry(stack, parent, name, make_dir, owner, bits, umask)


def mknod(stack: Stack, parent: Resolved, name: bytes, mode: int, rdev: int,
          owner: Owner, umask: int | None = None) -> Resolved:  # fmt: skip
    if layerfmt.is_whiteout_device(mode, rdev):
        # It would be a whiteout: the kernel refuses to create one (EPERM).
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    make = make_node(stat.S_IFMT(mode), rdev)
    return create_entry(stack, parent, name, make, owner, stat.S_IMODE(mode), umask)


def symlink(stack: Stack, parent: Resolved, name: bytes, target: bytes, owner: Owner) -> Resolved:
    return create_entry(stack, parent, name, make_symlink(target), owner, None)


def create_file(stack: Stack, parent: Resolved, name: bytes, mode: int,
                owner: Owner, umask: int | None = None) -> Resolved:  # fmt: skip
    return create_entry(stack, parent, name, make_file, owner, stat.S_IMODE(mode), umask)


def create_open(stack: Stack, parent: Resolved, name: bytes, mode: int, owner: Owner,
                umask: int | None, flags: int) -> tuple[Resolved, int]:  # fmt: skip
    """``create_file``, and the new file open with *flags*: the descriptor it was made
    with, as open(2) with O_CREAT hands back (no second open; it also writes a file whose
    mode does not let its owner write, as a new file's opener may)."""
    opened: list[int] = []

    def make(layer: LayerDir, path: bytes, bits: int) -> None:
        opened.append(layer.create(path, flags, _first_mode(bits)))

    try:
        res = create_entry(stack, parent, name, make, owner, stat.S_IMODE(mode), umask)
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    assert len(opened) == 1
    return res, opened[0]
