"""Hard links of lower files that survive copy-up (``index=on``; the kernel's index.c idea,
our own on-disk index).

Copying up one name of a multiply-linked lower file puts the copy in the index,
``WORKDIR/unionfs-index/<key>`` (key: the lower file's device, inode and ctime), and links
that name into the upper. Its other names stay lower until they are copied up in turn
(written, renamed, linked, removed), which links each into the upper as one more name of
the one copy (the kernel's ovl_link_up). Until then a lookup shows them *as* the copy
(``shown_copy``: it reads the index, never writes), so every name shows the same data,
owner, mode, ``st_ino`` and link count, as on the kernel with ``index=on``: after
``chmod a`` the upper holds ``a`` alone, and ``b`` still shows what ``a`` shows. The link
count the overlay shows is kept on the copy, in the private xattr ``overlay.unionfs.nlink``:
the lower count at copy-up, then one more for each link(2) and one less for each name
removed (the kernel's ``overlay.nlink`` does the same, relative).

Kernel compatibility: the upper names are ordinary hard links, so any overlay reads them;
but the kernel does not read our index (its own is keyed by file handles), so under the
kernel a name not yet linked up still shows the old lower file, and the link count of an
indexed file shows one more (the index's own link).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from unionfs.safepath import RENAME_NOREPLACE, split
from unionfs.union.stack import Resolved, Stack, StatLike, normal_paths, upper_of


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


def lower_link(stack: Stack, res: Resolved) -> bool:
    """A lower name whose copy-up goes through the index: one name of a lower hard link,
    or a name that shows an indexed copy already (whose own count may be down to one)."""
    return res.top != 0 and (res.index_copy is not None or indexed(stack, res.st))


# -- reading: what a lower name shows ------------------------------------------------------


def shown_copy(stack: Stack, res: Resolved) -> Resolved:
    """Lower non-directory *res* as the overlay shows it: its indexed copy when another of
    its names was copied up (the kernel's lookup finds the index entry by the lower's
    origin and shows that inode), else *res* itself. Reads the index, writes nothing."""
    if not indexed(stack, res.st):
        return res
    assert stack.links is not None
    key = key_of(res.st)
    st = stack.links.lstat(key)
    if st is None:
        return res
    paths = normal_paths(res.path, (res.top_path,))
    return Resolved(res.path, (res.top,), st, paths, index_copy=key)


def one_inode(stack: Stack, a: Resolved, b: Resolved) -> bool:
    """Whether names *a* and *b* are one inode of the overlay: names of one upper file;
    with ``index=on`` also names of one lower file, or of its indexed copy (linked up or
    not). Without it, names of a lower hard link are separate inodes (copy-up breaks it)."""
    if (a.st.st_dev, a.st.st_ino) != (b.st.st_dev, b.st.st_ino):
        return False
    if a.top == 0 and b.top == 0:
        return True
    if a.index_copy is not None or b.index_copy is not None:
        return True  # the same copy, shown by both
    return a.top == b.top and indexed(stack, a.st)


def _count(stack: Stack, res: Resolved) -> tuple[bytes, int] | None:
    _, nlink_name = xattr_names(stack)
    layer, path = stack.meta_of(res)
    value = layer.getxattr(path, nlink_name)
    if value is None:
        return None
    try:
        return nlink_name, int(value)
    except ValueError:
        return None


def shown_nlink(stack: Stack, res: Resolved) -> int | None:
    """The link count to show for *res* if it is an indexed copy (by an upper name, or
    a lower name that shows it), else None."""
    if not stack.features.index or res.is_dir:
        return None
    if res.index_copy is None and (res.top != 0 or res.st.st_nlink < 2):
        return None
    found = _count(stack, res)
    return None if found is None else found[1]


# -- writing: copies into the index, names into the upper ----------------------------------


def copy_into_index(stack: Stack, res: Resolved, build: Callable[[bytes], None]) -> bytes:
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
        build(temp)
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
    """Give the indexed copy *key* the upper name *path* (whose parent exists; the
    kernel's ovl_link_up); the upper parent's times stay, as after any copy-up."""
    links = stack.links
    assert links is not None
    upper = upper_of(stack)
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


def adjust(stack: Stack, res: Resolved, delta: int) -> bool:
    """Upper *res* gains or loses a name: its overlay link count follows. Returns whether
    it wrote (the file's ctime moved)."""
    if not stack.features.index or res.top != 0 or res.is_dir:
        return False
    found = _count(stack, res)
    if found is None:
        return False
    name, count = found
    upper_of(stack).setxattr(res.path, name, b"%d" % max(count + delta, 0))
    return True
