"""Driving ``UnionOperations`` without a mount: requests are plain coroutine calls.

``call`` runs one handler to completion on a fresh trio loop and returns its answer;
``fuse_errno`` runs one that must fail and returns the errno of its ``FUSEError``.
``Readdir`` stands in for the kernel's READDIRPLUS buffer (``pyfuse3.readdir_reply`` needs
a real request): it accepts a given number of entries, then reports the buffer full.
``setattr_request``, ``write_file`` and ``read_file`` build the requests a process's
chmod, write or read turns into; ``upper_tree`` shows what the upper layer holds.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyfuse3
import pytest
import trio
from layers import read_tree

from unionfs.fuse.inodes import ROOT_INODE
from unionfs.fuse.ops import UnionOperations

T = TypeVar("T")

# The handlers here never look at the context: a bare one is enough.
CTX = pyfuse3.RequestContext()
ROOT = ROOT_INODE


def call(handler: Callable[..., Awaitable[T]], *args: Any) -> T:
    return trio.run(handler, *args)


def opendir(ops: UnionOperations, ino: int) -> int:
    """The handle of an opendir (which may answer a ``FileInfo`` that carries it)."""
    info = call(ops.opendir, ino, CTX)
    return int(info if isinstance(info, int) else info.fh)


def fuse_errno(handler: Callable[..., Awaitable[Any]], *args: Any) -> int:
    with pytest.raises(pyfuse3.FUSEError) as info:
        call(handler, *args)
    return int(info.value.errno)


@dataclass
class Entry:
    name: bytes
    attrs: pyfuse3.EntryAttributes
    next_id: int


@dataclass
class Readdir:
    """One READDIRPLUS reply buffer with room for *room* entries (None: unlimited)."""

    room: int | None = None
    accepted: list[Entry] = field(default_factory=list)
    refused: list[Entry] = field(default_factory=list)

    def reply(
        self, token: object, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int
    ) -> bool:
        assert token is self
        entry = Entry(name, copy.copy(attrs), next_id)  # the binding copies it at once
        if self.room is not None and len(self.accepted) >= self.room:
            self.refused.append(entry)
            return False
        self.accepted.append(entry)
        return True

    @property
    def names(self) -> list[bytes]:
        return [e.name for e in self.accepted]


def readdir(
    ops: UnionOperations,
    monkeypatch: pytest.MonkeyPatch,
    fh: int,
    start_id: int = 0,
    room: int | None = None,
) -> Readdir:
    """One readdir request on open directory *fh*, answered into a fresh buffer."""
    buffer = Readdir(room)
    monkeypatch.setattr(pyfuse3, "readdir_reply", buffer.reply)
    call(ops.readdir, fh, start_id, buffer)
    return buffer


def lookup_ino(ops: UnionOperations, parent: int, name: bytes) -> int:
    return int(call(ops.lookup, parent, name, CTX).node_id)


def lookups(ops: UnionOperations, ino: int) -> int:
    """The kernel's reference count on *ino* as the inode table sees it (0: not in it)."""
    node = ops.inodes.find(ino)
    return 0 if node is None else node.lookups


def upper_tree(ops: UnionOperations) -> dict[str, object]:
    """What the upper layer holds now, as ``layers.read_tree`` describes it."""
    assert ops.stack.upper is not None
    return read_tree(ops.stack.upper.root)


@dataclass
class Fields:
    """``pyfuse3.SetattrFields`` as a test fills it in (pyfuse3's own is read-only)."""

    update_atime: bool = False
    update_mtime: bool = False
    update_ctime: bool = False
    update_mode: bool = False
    update_uid: bool = False
    update_gid: bool = False
    update_size: bool = False
    kill_suidgid: bool = False  # kill-priv v2 (the patched binding)


def setattr_request(**fields: int) -> tuple[pyfuse3.EntryAttributes, Fields]:
    """The (attributes, fields) of a setattr that changes *fields* (``mode=0o600``,
    ``size=0``, ``uid=5``, ``mtime_ns=...``) and nothing else."""
    attr = pyfuse3.EntryAttributes()
    which = Fields()
    for name, value in fields.items():
        setattr(attr, f"st_{name}", value)
        setattr(which, f"update_{name.removesuffix('_ns')}", True)
    return attr, which


def write_file(ops: UnionOperations, ino: int, data: bytes, flags: int = os.O_WRONLY) -> None:
    """open(ino, flags), write *data* at 0, fsync, release: as a process writing it."""
    fh = call(ops.open, ino, flags, CTX).fh
    try:
        assert call(ops.write, fh, 0, data) == len(data)
        call(ops.fsync, fh, False)
    finally:
        call(ops.release, fh)


def read_file(ops: UnionOperations, ino: int) -> bytes:
    fh = call(ops.open, ino, os.O_RDONLY, CTX).fh
    try:
        return bytes(call(ops.read, fh, 0, 1 << 20))
    finally:
        call(ops.release, fh)
