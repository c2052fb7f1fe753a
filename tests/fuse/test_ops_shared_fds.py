"""Operations called directly: the daemon's descriptors grow with the files open, not with
the opens (issue 16.6), and a reader opened on a lower file follows its copy-up even after
the copy lost its name.

Handles of one file opened alike share one backing descriptor, closed with the last of
them; reads and writes are positional, so no handle sees another's offset.
"""

from __future__ import annotations

import os

from .conftest import MakeOps
from .driver import CTX, ROOT, call, lookup_ino


def test_a_thousand_opens_of_one_file_use_one_descriptor(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "lower data"}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    readers = [call(ops.open, f, os.O_RDONLY, CTX).fh for _ in range(1000)]
    assert ops.handles.descriptors() == 1
    assert {call(ops.read, fh, 0, 5) for fh in readers[::100]} == {b"lower"}
    writer = call(ops.open, f, os.O_RDWR, CTX).fh  # copies up: the upper file, read-write
    assert ops.handles.descriptors() == 2
    call(ops.write, writer, 0, b"UPPER")
    for fh in readers[:500]:
        call(ops.release, fh)
    assert call(ops.read, readers[-1], 0, 10) == b"UPPER data"  # followed the copy-up
    for fh in readers[500:]:
        call(ops.release, fh)
    assert ops.handles.descriptors() == 1  # the writer's
    call(ops.release, writer)
    assert ops.handles.descriptors() == 0


def test_handles_opened_differently_do_not_share(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"f": "data", "g": "data"})
    f = lookup_ino(ops, ROOT, b"f")
    g = lookup_ino(ops, ROOT, b"g")
    handles = [
        call(ops.open, f, os.O_RDONLY, CTX).fh,
        call(ops.open, f, os.O_RDWR, CTX).fh,
        call(ops.open, f, os.O_RDWR | os.O_SYNC, CTX).fh,
        call(ops.open, g, os.O_RDONLY, CTX).fh,
    ]
    assert ops.handles.descriptors() == 4
    for fh in handles:
        call(ops.release, fh)
    assert ops.handles.descriptors() == 0


def test_a_reader_follows_a_copy_that_lost_its_name(make_ops: MakeOps) -> None:
    """Read-only on the lower file; another handle copies it up, writes, and the name goes:
    the reader reads the copy (held by the node), as the kernel's stacked file does."""
    ops = make_ops({"f": "lower data"}, upper={})
    f = lookup_ino(ops, ROOT, b"f")
    reader = call(ops.open, f, os.O_RDONLY, CTX).fh
    writer = call(ops.open, f, os.O_RDWR, CTX).fh
    call(ops.write, writer, 0, b"\xeb")
    call(ops.unlink, ROOT, b"f", CTX)
    assert call(ops.read, reader, 0, 5) == b"\xebower"
    call(ops.release, writer)
    assert call(ops.read, reader, 0, 5) == b"\xebower"
    call(ops.release, reader)
    assert ops.handles.descriptors() == 0
