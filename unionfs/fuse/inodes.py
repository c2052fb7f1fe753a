"""The inode table: FUSE inode numbers for merged entries, and the kernel's lookup counts.

Inode numbers are stable for the life of the mount: an entry's number is keyed by the
identity (st_dev, st_ino) of the topmost file it is made of, and that key is never
forgotten, so a name looked up again after the kernel forgot it gets its old number back,
and the names of a hard link share one number (and so one kernel inode).
"""

from __future__ import annotations

import errno
import os

from unionfs.union.stack import Resolved

ROOT_INODE = 1


class Node:
    """One inode the kernel knows. ``res`` is how it resolves now; ``parent`` is the inode
    of the directory it was last looked up in (unique for directories, used for ``..``)."""

    __slots__ = ("ino", "lookups", "parent", "res")

    def __init__(self, ino: int, parent: int, res: Resolved) -> None:
        self.ino = ino
        self.parent = parent
        self.res = res
        self.lookups = 0


class InodeTable:
    """Invariants: every ``Node`` in the table has ``lookups > 0`` or is the root; a key
    maps to one inode number for the life of the table; numbers are never reused."""

    def __init__(self, root: Resolved) -> None:
        self._numbers: dict[tuple[int, int], int] = {}
        self._nodes: dict[int, Node] = {}
        self._next = ROOT_INODE + 1
        self._numbers[self.key(root)] = ROOT_INODE
        self.root = Node(ROOT_INODE, ROOT_INODE, root)
        self.root.lookups = 1
        self._nodes[ROOT_INODE] = self.root

    @staticmethod
    def key(res: Resolved) -> tuple[int, int]:
        return (res.st.st_dev, res.st.st_ino)

    def number(self, res: Resolved) -> int:
        """The inode number of *res*, allocated on first sight."""
        key = (res.st.st_dev, res.st.st_ino)
        ino = self._numbers.get(key)
        if ino is None:
            ino = self._next
            self._next += 1
            self._numbers[key] = ino
        return ino

    def alias(self, new: Resolved, old_ino: int) -> None:
        """Make *new*'s identity map to *old_ino* (a copy-up keeps the inode number)."""
        self._numbers[self.key(new)] = old_ino

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
            node.res = res
            node.parent = parent
        node.lookups += count
        return node

    def forget(self, ino: int, count: int) -> None:
        """Drop *count* references; the node leaves the table at zero. Never raises."""
        node = self._nodes.get(ino)
        if node is None or ino == ROOT_INODE:
            return
        node.lookups -= count
        if node.lookups <= 0:
            del self._nodes[ino]

    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)
