"""The inode table: the kernel's node ids for merged entries, the inode numbers they show,
and the kernel's lookup counts.

A node id names one object for as long as the kernel may hold it: with a binding that
sets the node id apart from ``st_ino`` (``features``: ``node_id``), ids come from a counter
and are never given out twice, so an id never passes to a new file whose upper got the
old one's inode number (ext4 hands a freed number to the next file). The number a node
shows (``st_ino``) is the one the kernel's overlayfs would show (``numbering``: the file's
own, or the one a copied-up entry recorded), kept per identity (st_dev, st_ino) of the
topmost file for the mount; the names of a lower hard link show one number, as there.
Without that binding the id is the number, and the numbers stay apart: where one is taken
or does not fit, the entry gets one from ``FALLBACK``, good for this mount only.

Identities: an entry's node is keyed by the identity of the topmost file it is made of,
so the names of a hard link share one node. On a writable stack, a lower file with several
links is keyed by its name instead (the kernel's ovl_hash_bylower): copying up one name
breaks the link, and the other names must not change with it. A node whose last name went
keeps its file open (``held``) until the kernel forgets it: its inode number then cannot go
to another file, and it is served from that file, never by a path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from unionfs.union.held import Held
from unionfs.union.stack import Resolved

ROOT_INODE = 1
FALLBACK = 1 << 63  # numbers from here on are handed out in order, for one mount

Key = tuple[int, int | bytes]
Listed = tuple[bytes, Resolved, object]  # name, entry, its EntryAttributes


class Node:
    """One inode the kernel knows. ``ino`` is its node id, ``number`` its ``st_ino``;
    ``res`` is how it resolves now; ``parent`` is the inode of the directory it was last
    looked up in (unique for directories, used for ``..``)."""

    __slots__ = ("flush_due", "held", "ino", "listing", "lookups", "names", "number",
                 "parent", "res", "unlinked")  # fmt: skip

    def __init__(self, ino: int, number: int, parent: int, res: Resolved) -> None:
        self.ino = ino
        self.number = number
        self.parent = parent
        self.res = res
        self.names = {res.path}  # every path the kernel found it by (hard links: several)
        self.lookups = 0
        self.unlinked = False  # its last name is gone (it lives on while the kernel holds it)
        self.held: Held | None = None  # its upper file, kept once unlinked (module doc)
        # The merged listing of a directory with no upper part, kept while ``res`` stays:
        # nothing can change it without copying the directory up (which changes ``res``).
        self.listing: list[Listed] | None = None
        # A link, unlink or rename of it was answered: the kernel's write-back cache now
        # flushes the times it holds (the mtime unchanged), once (``metadata``).
        self.flush_due = False


class InodeTable:
    """Invariants: every ``Node`` in the table has ``lookups > 0`` or is the root; a node
    id names one node and is never given to another while that one is in the table (with
    ``separate_ids``, never again at all); without ``separate_ids`` a key maps to one
    number for the life of the table and numbers are never reused; ``_dirs`` maps the
    path of every directory node to its inode; a node with ``held`` is ``unlinked``."""

    def __init__(
        self,
        root: Resolved,
        writable: bool = False,
        numbering: Callable[[Resolved, bool], int | None] | None = None,
        separate_ids: bool = False,
    ) -> None:
        self.writable = writable
        self.separate_ids = separate_ids
        self._numbering = numbering
        self._numbers: dict[Key, int] = {}
        self._ids: dict[Key, int] = {}  # the node id of each key's live node
        self._taken = {ROOT_INODE}  # every number given out: never given to another key
        self._nodes: dict[int, Node] = {}
        self._dirs: dict[bytes, int] = {root.path: ROOT_INODE}
        self._next = FALLBACK if numbering is not None else ROOT_INODE + 1
        self._next_id = ROOT_INODE + 1
        # Unlinked files kept open until the kernel forgets them, and how many were let go:
        # their blocks stay taken meanwhile (a writer meeting a full upper waits for them).
        self.holding = 0
        self.released = 0
        self._numbers[self.key(root)] = ROOT_INODE
        self._ids[self.key(root)] = ROOT_INODE
        self.root = Node(ROOT_INODE, ROOT_INODE, ROOT_INODE, root)
        self.root.lookups = 1
        self._nodes[ROOT_INODE] = self.root

    def key(self, res: Resolved) -> Key:
        st = res.st
        if self.writable and res.top != 0 and st.st_nlink > 1 and not res.is_dir:
            return (-1 - res.top, res.path)
        return (st.st_dev, st.st_ino)

    def number(self, res: Resolved, made: bool = False) -> int:
        """The inode number *res* shows, allocated on first sight; *made*: the entry was
        just made through this mount (``numbering`` then needs to read nothing of it)."""
        key = self.key(res)
        ino = self._numbers.get(key)
        if ino is None:
            ino = self._numbering(res, made) if self._numbering is not None else None
            # With separate ids a number may repeat where the kernel's does: the names of
            # a lower hard link. Without, the number is the id: unique.
            shared = self.separate_ids and isinstance(key[1], bytes)
            if ino is None or ino < 2 or ino >= FALLBACK or (ino in self._taken and not shared):
                ino = self._next
                self._next += 1
            self._taken.add(ino)
            self._numbers[key] = ino
        return ino

    def id_of(self, res: Resolved) -> int:
        """The node id of *res*: its node's, or the one ``remember`` would give it now."""
        ino = self._ids.get(self.key(res))
        if ino is not None and ino in self._nodes:
            return ino
        return self._next_id if self.separate_ids else self.number(res)

    def get(self, ino: int) -> Node:
        node = self._nodes.get(ino)
        if node is None:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        return node

    def find(self, ino: int) -> Node | None:
        return self._nodes.get(ino)

    def remember(self, res: Resolved, parent: int, count: int = 1, made: bool = False) -> Node:
        """Record that the kernel got *count* more references to *res* (a lookup; *made*:
        an entry just made through this mount, as for ``number``)."""
        node = self.node_of(res)
        if node is None:
            number = self.number(res, made)
            if self.separate_ids:
                ino, self._next_id = self._next_id, self._next_id + 1
            else:
                ino = number
            node = Node(ino, number, parent, res)
            self._nodes[ino] = node
            self._ids[self.key(res)] = ino
        else:
            self.update(node, res, renamed=False)
            node.parent = parent
            if node.unlinked:  # found by another name (a hard link the kernel had not seen)
                node.unlinked = False
                self._release(node)
        if res.is_dir:
            self._dirs[res.path] = node.ino
        node.lookups += count
        return node

    def remember_listed(self, ino: int, res: Resolved, parent: int) -> None:
        """A lookup reference taken by READDIRPLUS for an entry given node id *ino*
        (``id_of`` just before)."""
        node = self._nodes.get(ino)
        if node is not None and node.res is res:
            node.lookups += 1  # the common case: a cached listing, nothing moved
        else:
            made = self.remember(res, parent)
            assert made.ino == ino, "id_of promised another node id"

    def update(self, node: Node, res: Resolved, renamed: bool = True) -> None:
        """*node* now resolves as *res* (after a copy-up, a rename, or, not *renamed*, a
        lookup by another of its names); its node id stays, and so does its number,
        except where the kernel's changes: the copy of one name of a lower hard link
        shows its own."""
        if res is node.res:
            return
        node.listing = None
        if res.path != node.res.path:
            if renamed:
                node.names.discard(node.res.path)
            node.names.add(res.path)
        old, new = self.key(node.res), self.key(res)
        if new != old:
            self._ids[new] = node.ino
            if self.separate_ids and isinstance(old[1], bytes) and new not in self._numbers:
                node.number = self.number(res)
            else:
                self._numbers[new] = node.number
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

    def lost_name(self, node: Node, path: bytes, held: Held | None = None) -> bool:
        """*node* is no longer found at *path*; False when that was its last known name
        (it is then unlinked, and keeps *held*, its file), True when it has another
        (which it now resolves by; *held* is closed)."""
        node.names.discard(path)
        if not node.names:
            node.unlinked = True
            if held is not None:
                self._release(node)
                node.held = held
                self.holding += 1
            return False
        if held is not None:
            held.close()
        if node.res.path == path:
            other = next(iter(node.names))
            node.res = node.res.moved_to(other)
        return True

    def dir_at(self, path: bytes) -> Node | None:
        ino = self._dirs.get(path)
        return None if ino is None else self._nodes.get(ino)

    def node_of(self, res: Resolved) -> Node | None:
        """The node the kernel holds for the file *res* names, if any."""
        ino = self._ids.get(self.key(res))
        return None if ino is None else self._nodes.get(ino)

    def moved(self, old: bytes, new: bytes) -> None:
        """A directory moved from *old* to *new*: rewrite the paths of everything below,
        every name a node was found by included."""
        prefix = old + b"/"
        for node in self._nodes.values():
            if any(name.startswith(prefix) for name in node.names):
                node.names = {
                    new + name[len(old) :] if name.startswith(prefix) else name
                    for name in node.names
                }
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
            key = self.key(node.res)
            if self._ids.get(key) == ino:
                del self._ids[key]
            if node.unlinked and self.separate_ids:
                # Its file is gone: a new one may get its inode number, and shows its own.
                self._numbers.pop(key, None)
            if node.res.is_dir and self._dirs.get(node.res.path) == ino:
                del self._dirs[node.res.path]
            self._release(node)

    def _release(self, node: Node) -> None:
        if node.held is not None:
            node.held.close()
            node.held = None
            self.holding -= 1
            self.released += 1

    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def close(self) -> None:
        """Close every held file (at unmount)."""
        for node in self._nodes.values():
            self._release(node)

    def __len__(self) -> int:
        return len(self._nodes)
