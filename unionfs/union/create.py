"""Creating entries (the kernel's dir.c, create side).

The parent is copied up first. A name that only a whiteout hides is created in the work
directory and moved over the whiteout in one rename; a directory made that way is opaque,
so the lower directory it replaces does not show through it (as overlayfs does).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from unionfs import layerfmt
from unionfs.safepath import RENAME_EXCHANGE, LayerDir, join
from unionfs.union import whiteout
from unionfs.union.copybuild import chown_if_allowed
from unionfs.union.copyup import copy_up
from unionfs.union.lookup import check_name, lookup
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


def check_new(stack: Stack, parent: Resolved, name: bytes) -> None:
    """Check that *name* can be created in *parent*; changes nothing."""
    check_name(name)
    _refuse_marker_name(name)
    if not parent.is_dir:
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    if lookup(stack, parent, name) is not None:
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))


def prepare(stack: Stack, parent: Resolved, name: bytes) -> Resolved:
    """Check that *name* can be created in *parent* and copy the parent up."""
    check_new(stack, parent, name)
    return copy_up(stack, parent)


def create_entry(
    stack: Stack,
    parent: Resolved,
    name: bytes,
    make: Callable[[LayerDir, bytes], None],
    owner: Owner | None,
    mode: int | None,
) -> Resolved:
    """Create *name* in *parent* with ``make(layer, path)``, owned by *owner*.

    *mode* (permission bits, None for symlinks) is set after the owner, since chown clears
    set-id bits. Returns the new entry resolved.
    """
    parent = prepare(stack, parent, name)
    upper = upper_of(stack)
    path = join(parent.path, name)
    ids = None
    if owner is not None:
        gid = parent.st.st_gid if parent.st.st_mode & stat.S_ISGID else owner.gid
        ids = (owner.uid, gid)
    over_whiteout = whiteout.has_whiteout(stack, path)
    if not over_whiteout:
        make(upper, path)
        try:
            _finish(upper, path, ids, mode)
        except BaseException:
            upper.unlink(path) if ids is None else upper.remove_tree(path)
            raise
    else:
        work = stack.work
        assert work is not None
        temp = stack.temp_name()
        try:
            make(work, temp)
            _finish(work, temp, ids, mode)
            st = work.lstat(temp)
            assert st is not None
            if stat.S_ISDIR(st.st_mode):
                whiteout.set_opaque(stack, work, temp)
            if stat.S_ISDIR(st.st_mode) and upper.lstat(path) is not None:
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
    st = upper.lstat(path)
    assert st is not None
    return Resolved(path, (0,), st)


def _finish(layer: LayerDir, path: bytes, ids: tuple[int, int] | None, mode: int | None) -> None:
    """Owner, then mode (chown clears set-id bits); each only if it would change anything:
    creating many files should cost one syscall each, not three."""
    st = layer.lstat(path)
    assert st is not None
    if ids is not None and ids != (st.st_uid, st.st_gid):
        chown_if_allowed(layer, path, *ids)
        st = layer.lstat(path)
        assert st is not None
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        layer.chmod(path, mode)


# Entries are created with their final permission bits (so that usually nothing else is
# needed), except set-id and sticky bits, which chown would clear: chmod adds those after.
# The entry is empty or new while it may still belong to the daemon: nothing can leak.
def _first_mode(mode: int) -> int:
    return stat.S_IMODE(mode) & 0o777


def make_dir(mode: int) -> Callable[[LayerDir, bytes], None]:
    return lambda layer, path: layer.mkdir(path, _first_mode(mode))


def make_node(mode: int, rdev: int) -> Callable[[LayerDir, bytes], None]:
    return lambda layer, path: layer.mknod(path, stat.S_IFMT(mode) | _first_mode(mode), rdev)


def make_symlink(target: bytes) -> Callable[[LayerDir, bytes], None]:
    return lambda layer, path: layer.symlink(target, path)


def make_file(mode: int = 0o600) -> Callable[[LayerDir, bytes], None]:
    return lambda layer, path: os.close(layer.create(path, os.O_WRONLY, _first_mode(mode)))


def mkdir(stack: Stack, parent: Resolved, name: bytes, mode: int, owner: Owner) -> Resolved:
    bits = stat.S_IMODE(mode) | (parent.st.st_mode & stat.S_ISGID)
    return create_entry(stack, parent, name, make_dir(mode), owner, bits)


def mknod(stack: Stack, parent: Resolved, name: bytes, mode: int, rdev: int,
          owner: Owner) -> Resolved:  # fmt: skip
    if layerfmt.is_whiteout_device(mode, rdev):
        # It would be a whiteout: the kernel refuses to create one (EPERM).
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    return create_entry(stack, parent, name, make_node(mode, rdev), owner, stat.S_IMODE(mode))


def symlink(stack: Stack, parent: Resolved, name: bytes, target: bytes, owner: Owner) -> Resolved:
    return create_entry(stack, parent, name, make_symlink(target), owner, None)


def create_file(stack: Stack, parent: Resolved, name: bytes, mode: int,
                owner: Owner) -> Resolved:  # fmt: skip
    return create_entry(stack, parent, name, make_file(mode), owner, stat.S_IMODE(mode))
