"""Hard links of lower files that survive copy-up (``index=on``; the kernel's index.c idea,
our own on-disk index).

Copying up one name of a multiply-linked lower file puts the copy in the index,
``WORKDIR/unionfs-index/<key>`` (key: the lower file's device, inode and ctime), and links
the upper name to it. Any other name of that lower file, when it is next resolved, is
linked to the same copy (it becomes one more upper name of the one inode): every name
shows the same data, owner, mode, ``st_ino`` and link count, as on the kernel with
``index=on``. The link count the overlay shows is kept on the inode, in the private xattr
``overlay.unionfs.nlink``: the lower count at copy-up, then one more for each link(2) and
one less for each name removed (the kernel's ``overlay.nlink`` does the same, relative).

Kernel compatibility: the upper names are ordinary hard links, so any overlay reads them;
but the kernel does not read our index (its own is keyed by file handles), so under the
kernel a name never resolved through unionfs since the copy-up still shows the old lower
file, and the link count of an indexed file shows one more (the index's own link).
"""

from __future__ import annotations

import os
import stat

from unionfs.safepath import RENAME_NOREPLACE, LayerDir, split
from unionfs.union.stack import Resolved, Stack, StatLike


def xattr_names(stack: Stack) -> tuple[bytes, bytes]:
    """(origin key, overlay link count): private overlay xattrs, never shown or copied."""
    prefix = stack.redirect_xattr[: -len(b"redirect")]
    return prefix + b"unionfs.origin", prefix + b"unionfs.nlink"


def key_of(st: StatLike) -> bytes:
    return b"%x-%x-%x" % (st.st_dev, st.st_ino, st.st_ctime_ns)


def indexed(stack: Stack, st: StatLike) -> bool:
    """Whether a lower non-directory with this lstat is kept in the index when copied up."""
    return (
        stack.features.index
        and stack.links is not None
        and not stat.S_ISDIR(st.st_mode)
        and st.st_nlink > 1
    )


def _upper(stack: Stack) -> LayerDir:
    assert stack.upper is not None
    return stack.upper


def copy_into_index(stack: Stack, res: Resolved, build: object) -> bytes:
    """The index name of lower *res*'s copy, made by ``build(temp)`` in the work directory
    if it is not there yet; its xattrs say its origin and the overlay's link count."""
    links = stack.links
    work = stack.work
    assert links is not None and work is not None
    key = key_of(res.st)
    if links.lstat(key) is not None:
        return key
    temp = stack.temp_name()
    try:
        build(temp)  # type: ignore[operator]
        origin, nlink = xattr_names(stack)
        work.setxattr(temp, origin, key)
        work.setxattr(temp, nlink, b"%d" % res.st.st_nlink)
        work.rename_to(temp, links, key, RENAME_NOREPLACE)
    except FileExistsError:
        work.remove_tree(temp)  # raced: the other copy stands
    except BaseException:
        work.remove_tree(temp)
        raise
    return key


def link_up(stack: Stack, key: bytes, path: bytes) -> StatLike:
    """Give the indexed copy *key* the upper name *path* (whose parent exists); the upper
    parent's times stay, as after any copy-up."""
    links = stack.links
    assert links is not None
    upper = _upper(stack)
    parent, _ = split(path)
    times = upper.lstat(parent)
    src_dir, src_name = links.at(key)
    dst_dir, dst_name = upper.at(path)
    try:
        os.link(src_name, dst_name, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
    except FileExistsError:
        pass  # raced with another copy-up of this name
    if times is not None and parent:
        upper.utime(parent, (times.st_atime_ns, times.st_mtime_ns))
    st = upper.lstat(path)
    assert st is not None
    return st


def alias(stack: Stack, res: Resolved) -> Resolved:
    """Lower *res*, or its upper name once linked to its indexed copy (when one exists)."""
    if res.top == 0 or not indexed(stack, res.st):
        return res
    links = stack.links
    assert links is not None
    key = key_of(res.st)
    if links.lstat(key) is None:
        return res
    from unionfs.union.copyup import ensure_upper_dir  # copyup imports lookup, which us

    ensure_upper_dir(stack, split(res.path)[0])
    return Resolved(res.path, (0,), link_up(stack, key, res.path))


def _count(stack: Stack, path: bytes) -> tuple[bytes, int] | None:
    upper = _upper(stack)
    _, nlink_name = xattr_names(stack)
    value = upper.getxattr(path, nlink_name)
    if value is None:
        return None
    try:
        return nlink_name, int(value)
    except ValueError:
        return None


def shown_nlink(stack: Stack, res: Resolved) -> int | None:
    """The link count to show for upper *res* if it is an indexed copy, else None."""
    if not stack.features.index or res.top != 0 or res.is_dir or res.st.st_nlink < 2:
        return None
    found = _count(stack, res.path)
    return None if found is None else found[1]


def adjust(stack: Stack, res: Resolved, delta: int) -> None:
    """Upper *res* gains or loses a name: its overlay link count follows."""
    if not stack.features.index or res.top != 0 or res.is_dir:
        return
    found = _count(stack, res.path)
    if found is not None:
        name, count = found
        _upper(stack).setxattr(res.path, name, b"%d" % max(count + delta, 0))
