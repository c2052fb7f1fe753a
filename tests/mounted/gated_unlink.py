"""``python gated_unlink.py mount -f ...``: ``unionfs`` whose answer to an unlink of a name
``gated`` waits (issue 19.9), for ``test_unlink_listing_race``: it holds the answer until
a lookup of ``release``, and a listing of ``low`` waits for that unlink to be done. So a
READDIRPLUS is answered after the unlink and before the kernel's own bookkeeping of it.
Not a test module; never imported by unionfs.
"""

from __future__ import annotations

import sys

import pyfuse3
import trio

from unionfs.cli import main
from unionfs.fuse.ops import UnionOperations

GIVE_UP = 600.0  # seconds: a gate never opened fails the test instead of hanging it
_unlinked = trio.Event()
_released = trio.Event()
_unlink = UnionOperations.unlink
_readdir = UnionOperations.readdir
_lookup = UnionOperations.lookup


async def unlink(self: UnionOperations, parent: int, name: bytes, ctx: object) -> None:
    await _unlink(self, parent, name, ctx)  # type: ignore[arg-type]
    if name == b"gated":
        _unlinked.set()
        with trio.move_on_after(GIVE_UP):
            await _released.wait()


async def readdir(self: UnionOperations, fh: int, start_id: int, token: object) -> None:
    if self.inodes.get(self.handles.dir(fh).ino).res.path == b"low":
        with trio.move_on_after(GIVE_UP):
            await _unlinked.wait()
    await _readdir(self, fh, start_id, token)  # type: ignore[arg-type]


async def lookup(self: UnionOperations, parent: int, name: bytes, ctx: object) -> object:
    if name == b"release":
        _released.set()
    return await _lookup(self, parent, name, ctx)  # type: ignore[arg-type]


UnionOperations.unlink = unlink  # type: ignore[method-assign,assignment]
UnionOperations.readdir = readdir  # type: ignore[method-assign,assignment]
UnionOperations.lookup = lookup  # type: ignore[method-assign,assignment]
assert pyfuse3  # the binding the patched handlers serve through

if __name__ == "__main__":
    sys.argv[0] = "unionfs"
    sys.exit(main())
