"""Operations called directly: a setattr the kernel may legally send must never reach an
assert (issue 16.5).

A hard link's node remembers every name it was found by. When a directory holding one of
those names is renamed, only the name the node resolves by now moves with it; once that
one is removed the node falls back to a name that no longer exists. The write-back cache's
flush of a file's times (a setattr with times only and no file handle) then asserted in
``union.attrs.set_attributes`` (``assert now is not None``) and was answered EIO, with a
traceback in the log; under a random stress tool and ``rm -rf``, 101 times.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import pyfuse3
import pytest
from layers import File

from .conftest import MakeOps
from .driver import CTX, ROOT, call, lookup_ino

MTIME_NS = 1_500_000_000 * 10**9


@dataclass(frozen=True)
class TimesOnly:
    """The fields of a setattr that changes the modification time alone (the write-back
    cache's flush); pyfuse3's own SetattrFields cannot be made outside a request."""

    update_mode: bool = False
    update_uid: bool = False
    update_gid: bool = False
    update_size: bool = False
    update_atime: bool = False
    update_mtime: bool = True
    update_ctime: bool = False


@pytest.mark.parametrize("other_name_inside", [False, True])
def test_a_times_only_setattr_after_the_names_moved_sets_the_time(
    make_ops: MakeOps, caplog: pytest.LogCaptureFixture, other_name_inside: bool
) -> None:
    ops = make_ops({}, upper={"x": File("data"), "d/": {}})
    x = lookup_ino(ops, ROOT, b"x")
    d = lookup_ino(ops, ROOT, b"d")
    call(ops.link, x, d, b"a", CTX)
    if other_name_inside:  # both names in d: d/a and d/b, the node resolving by d/a
        call(ops.link, x, d, b"b", CTX)
        call(ops.unlink, ROOT, b"x", CTX)
        assert lookup_ino(ops, d, b"a") == x
    else:  # x and d/a, the node resolving by x
        assert lookup_ino(ops, ROOT, b"x") == x
    call(ops.rename, ROOT, b"d", ROOT, b"e", 0, CTX)
    e = lookup_ino(ops, ROOT, b"e")
    call(ops.unlink, *((e, b"a") if other_name_inside else (ROOT, b"x")), CTX)
    survivor = ops.stack.upper.root + ("/e/b" if other_name_inside else "/e/a")
    attrs = pyfuse3.EntryAttributes()
    attrs.st_mtime_ns = MTIME_NS
    with caplog.at_level(logging.ERROR):
        answer = call(ops.setattr, x, attrs, TimesOnly(), None, CTX)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert answer.st_mtime_ns == MTIME_NS
    assert os.lstat(survivor).st_mtime_ns == MTIME_NS
