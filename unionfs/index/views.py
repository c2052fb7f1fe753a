"""Layers served from the index: both implement ``union.stack.Layer``, so the same rules
run over them as over directories.

``IndexedLayer`` is one layer as its index records it, markers included: whiteouts look
like the kernel's 0/0 devices and opaque directories answer ``is_opaque``. The stack index
is built by running ``union.readdir`` over a stack of these.

``IndexedLowers`` is a whole lower stack pre-merged: no whiteouts, nothing opaque, nothing
below it. A mount is ``[upper, IndexedLowers]``: a lookup or getattr of a lower entry is one
LMDB read and no syscall, a listing one cursor scan, whatever the depth; only data (open)
goes to the one layer directory that holds the entry.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence

from unionfs.index import codec
from unionfs.index.env import IndexEnv
from unionfs.safepath import join
from unionfs.union.stack import Attrs, DirLayer, StatLike

RECENT = 4096  # decoded records kept by ``IndexedLowers`` (a listing's, or lookups')


class _Table:
    def __init__(self, env: IndexEnv, table: int) -> None:
        self._env = env
        self.table = table

    def record(self, path: bytes) -> codec.Record | None:
        with self._env.read() as txn:
            raw = txn.get(codec.entry_key(self.table, path), db=self._env.entries)
        return None if raw is None else codec.decode(bytes(raw))

    def records(self, path: bytes) -> list[tuple[bytes, codec.Record]]:
        """The children of directory *path*, as one cursor scan."""
        prefix = codec.children_prefix(self.table, path)
        found: list[tuple[bytes, codec.Record]] = []
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._env.entries)
            if cursor.set_range(prefix):
                for raw_key, value in cursor:
                    key = bytes(raw_key)
                    if not key.startswith(prefix):
                        break
                    found.append((key[len(prefix) :], codec.decode(bytes(value))))
        return found

    def _must(self, path: bytes) -> codec.Record:
        record = self.record(path)
        if record is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), os.fsdecode(path))
        return record

    def readlink(self, path: bytes) -> bytes:
        return self._must(path).target

    def getxattr(self, path: bytes, name: bytes) -> bytes | None:
        for key, value in self._must(path).xattrs:
            if key == name:
                return value
        return None

    def dir_getxattr(self, path: bytes, name: bytes) -> bytes | None:
        return self.getxattr(path, name)  # one read, whatever the type

    def listxattr(self, path: bytes) -> list[bytes]:
        return [key for key, _ in self._must(path).xattrs]


class IndexedLayer(_Table):
    """One layer from its index; data comes from *directory*."""

    def __init__(self, env: IndexEnv, table: int, directory: DirLayer) -> None:
        super().__init__(env, table)
        self.directory = directory
        self.root = directory.root

    @staticmethod
    def _attrs(record: codec.Record) -> Attrs:
        if record.flags & codec.WHITEOUT:
            return codec.whiteout_attrs(record.attrs)
        return record.attrs

    def lstat(self, path: bytes) -> StatLike | None:
        record = self.record(path)
        return None if record is None else self._attrs(record)

    def scandir(self, path: bytes) -> Iterator[tuple[bytes, StatLike]]:
        return iter([(name, self._attrs(rec)) for name, rec in self.records(path)])

    def is_opaque(self, path: bytes) -> bool:
        record = self.record(path)
        return record is not None and bool(record.flags & codec.OPAQUE)

    def open(self, path: bytes, flags: int, mode: int = 0) -> int:
        return self.directory.open(path, flags, mode)

    def statvfs(self) -> os.statvfs_result:
        return self.directory.statvfs()

    def devices(self) -> list[int]:
        return self.directory.devices()

    def close(self) -> None:
        """Nothing: *directory* belongs to whoever gave it (the index build)."""


class IndexedLowers(_Table):
    """A merged lower stack from its index; *directories* are its layers, top first.

    Its table never changes while it is served (lower layers do not change under a
    mount), so the records of the last listing and of recent lookups are kept decoded:
    a listing or a lookup reads an entry's attributes and then its xattrs (the inode
    number a copy recorded), one LMDB read and decode instead of two."""

    def __init__(self, env: IndexEnv, table: int, directories: Sequence[DirLayer]) -> None:
        super().__init__(env, table)
        self.directories = list(directories)
        self.root = ":".join(d.root for d in self.directories)
        self._recent: dict[bytes, codec.Record] = {}

    def record(self, path: bytes) -> codec.Record | None:
        found = self._recent.get(path)
        if found is None:
            found = super().record(path)
            if found is not None:
                if len(self._recent) >= RECENT:
                    self._recent.clear()
                self._recent[path] = found
        return found

    def records(self, path: bytes) -> list[tuple[bytes, codec.Record]]:
        found = super().records(path)
        if len(found) <= RECENT:
            self._recent = {join(path, name): record for name, record in found}
        return found

    def lstat(self, path: bytes) -> StatLike | None:
        record = self.record(path)
        return None if record is None else record.attrs

    def scandir(self, path: bytes) -> Iterator[tuple[bytes, StatLike]]:
        return iter([(name, rec.attrs) for name, rec in self.records(path)])

    def is_opaque(self, path: bytes) -> bool:
        return False  # nothing is below the merged lowers

    def layer_of(self, path: bytes) -> DirLayer:
        """The layer directory that holds *path*'s data."""
        return self.directories[self._must(path).layer]

    def open(self, path: bytes, flags: int, mode: int = 0) -> int:
        return self.layer_of(path).open(path, flags, mode)

    def statvfs(self) -> os.statvfs_result:
        return self.directories[0].statvfs()

    def devices(self) -> list[int]:
        return [directory.dev for directory in self.directories]

    def close(self) -> None:
        for directory in self.directories:
            directory.close()
