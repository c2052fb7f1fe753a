"""The inode table: FUSE inode numbers for merged entries, and the kernel's lookup counts.

An entry's number is the one the kernel's overlayfs would show (``numbering``: the file's
own inode number, or the one a copied-up entry recorded), so numbers stay the same from
one mount to the next; where that number is taken by another entry (two names of a lower
hard link, once copy-up has separated them) or does not fit, the entry gets one from
``FALLBACK``, good for this mount only. Within a mount numbers never change: an entry's
number is keyed by the identity (st_dev, st_ino) of the topmost file it is made of, and
that key is never forgotten, so a name looked up again after the kernel forgot it gets its
old number back, and the names of a hard link share one number (and so one kernel inode).

One exception, the kernel's (ovl_hash_bylower): on a writable stack, a lower file with
several links is keyed by its name, because copying up one name breaks the link (as
overlayfs does without index=on) and the other names must not change with it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from unionfs.union.stack import Resolved

ROOT_INODE = 1
FALLBACK = 1 << 63  # numbers from here on are handed out in order, for one mount

Key = tuple[int, int | bytes]
Listed = tuple[bytes, Resolved, object]  # name, entry, its EntryAttributes


class Node:
    """One inode the kernel knows. ``res`` is how it resolves now; ``parent`` is the inode
    of the directory it was last looked up in (unique for directories, used for ``..``)."""

    __slots__ = ("ino", "listing", "lookups", "names", "parent", "res", "unlinked")

    def __init__(self, ino: int, parent: int, res: Resolved) -> None:
        self.ino = ino
        self.parent = parent
        self.res = res
        self.names = {res.path}  # every path the kernel found it by (hard links: several)
        self.lookups = 0
        self.unlinked = False  # its last name is gone (it lives on while open)
        # The merged listing of a directory with no upper part, kept while ``res`` stays:
        # nothing can change it without copying the directory up (which changes ``res``).
        self.listing: list[Listed] | None = None


class InodeTable:
    """Invariants: every ``Node`` in the table has ``lookups > 0`` or is the root; a key
    maps to one inode number for the life of the table; numbers are never reused;
    ``_dirs`` maps the path of every directory node to its inode."""

    def __init__(
        self,
        root: Resolved,
        writable: bool = False,
        numbering: Callable[[Resolved], int | None] | None = None,
    ) -> None:
        self.writable = writable
        self._numbering = numbering
        self._numbers: dict[Key, int] = {}
        self._taken = {ROOT_INODE}  # every number given out: never given to another key
        self._nodes: dict[int, Node] = {}
        self._dirs: dict[bytes, int] = {root.path: ROOT_INODE}
        self._next = FALLBACK if numbering is not None else ROOT_INODE + 1
        self._numbers[self.key(root)] = ROOT_INODE
        self.root = Node(ROOT_INODE, ROOT_INODE, root)
        self.root.lookups = 1
        self._nodes[ROOT_INODE] = self.root

    def key(self, res: Resolved) -> Key:
        st = res.st
        if self.writable and res.top != 0 and st.st_nlink > 1 and not res.is_dir:
            return (-1 - res.top, res.path)
        return (st.st_dev, st.st_ino)

    def number(self, res: Resolved) -> int:
        """The inode number of *res*, allocated on first sight."""
        key = self.key(res)
        ino = self._numbers.get(key)
        if ino is None:
            ino = self._numbering(res) if self._numbering is not None else None
            if ino is None or ino < 2 or ino in self._taken or ino >= FALLBACK:
                ino = self._next
                self._next += 1
            self._taken.add(ino)
            self._numbers[key] = ino
        return ino

    def get(self, ino: int) -> Node:
        node = self._nodes.get(ino)
        if node is None:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        return node

    def find(self, ino: int) -> Node | None:
        return self._nodes.get(ino)

    def remember(self, res: Resolved, parent: int, count: int = 1) -> Node:
        """Record that the kernel got *count* more references to *res* (a lookup)."""
        ino = self.number(res)
        node = self._nodes.get(ino)
        if node is None:
            node = Node(ino, parent, res)
            self._nodes[ino] = node
        else:
            self.update(node, res, renamed=False)
            node.parent = parent
            node.unlinked = False
        if res.is_dir:
            self._dirs[res.path] = ino
        node.lookups += count
        return node

    def remember_listed(self, ino: int, res: Resolved, parent: int) -> None:
        """A lookup reference taken by READDIRPLUS for an entry numbered *ino*."""
        node = self._nodes.get(ino)
        if node is not None and node.res is res:
            node.lookups += 1  # the common case: a cached listing, nothing moved
        else:
            self.remember(res, parent)

    def update(self, node: Node, res: Resolved, renamed: bool = True) -> None:
        """*node* now resolves as *res* (after a copy-up, a rename, or, not *renamed*, a
        lookup by another of its names); its number stays."""
        if res is node.res:
            return
        node.listing = None
        if res.path != node.res.path:
            if renamed:
                node.names.discard(node.res.path)
            node.names.add(res.path)
        if self.key(res) != self.key(node.res):
            self._numbers[self.key(res)] = node.ino
        if node.res.is_dir and self._dirs.get(node.res.path) == node.ino:
            del self._dirs[node.res.path]
        node.res = res
        if res.is_dir:
            self._dirs[res.path] = node.ino

    def renamed(self, node: Node, old: bytes, res: Resolved) -> None:
        """*node*'s name *old* is now *res* (a rename). Only that name goes: a hard link
        keeps its others, whichever of them ``res`` last named."""
        node.names.discard(old)
        self.update(node, res, renamed=False)

    def lost_name(self, node: Node, path: bytes) -> bool:
        """*node* is no longer found at *path*; False when that was its last known name
        (it is then unlinked), True when it has another (which it now resolves by)."""
        node.names.discard(path)
        if not node.names:
            return False
        if node.res.path == path:
            other = next(iter(node.names))
            node.res = node.res.moved_to(other)
        return True

    def dir_at(self, path: bytes) -> Node | None:
        ino = self._dirs.get(path)
        return None if ino is None else self._nodes.get(ino)

    def node_of(self, res: Resolved) -> Node | None:
        """The node the kernel holds for the file *res* names, if any."""
        ino = self._numbers.get(self.key(res))
        return None if ino is None else self._nodes.get(ino)

    def moved(self, old: bytes, new: bytes) -> None:
        """A directory moved from *old* to *new*: rewrite the paths of everything below."""
        prefix = old + b"/"
        for node in self._nodes.values():
            path = node.res.path
            if path.startswith(prefix):
                fresh = new + path[len(old) :]
                self.update(node, node.res.moved_to(fresh))

    def forget(self, ino: int, count: int) -> None:
        """Drop *count* references; the node leaves the table at zero. Never raises."""
        node = self._nodes.get(ino)
        if node is None or ino == ROOT_INODE:
            return
        node.lookups -= count
        if node.lookups <= 0:
            del self._nodes[ino]
            if node.res.is_dir and self._dirs.get(node.res.path) == ino:
                del self._dirs[node.res.path]

    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)
