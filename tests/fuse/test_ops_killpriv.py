"""Kill-priv v2, not mounted: the set-id bits a write, truncate or chown clears where the
kernel asks (``kill_suidgid``), and the rules of ``killpriv`` themselves."""

from __future__ import annotations

import os
import stat

import pytest
from layers import File

from unionfs.fuse import features, killpriv
from unionfs.fuse.ops import UnionOperations

from .conftest import MakeOps
from .driver import CTX, ROOT, call, lookup_ino, setattr_request

REG = stat.S_IFREG


def test_kill_priv_v2_is_asked_for_when_the_binding_has_it() -> None:
    assert UnionOperations.enable_killpriv_v2 == ("killpriv_v2" in features.available())


@pytest.mark.parametrize(
    ("mode", "after"),
    [(0o6755, 0o0755), (0o6745, 0o2745), (0o4644, 0o0644), (0o2755, 0o0755), (0o0755, 0o0755)],
)
def test_the_kernels_request_clears_set_uid_and_group_executable_set_gid(
    mode: int, after: int
) -> None:
    assert killpriv.cleared(REG | mode) == REG | after


def test_a_directory_keeps_its_bits() -> None:
    assert killpriv.cleared(stat.S_IFDIR | 0o2755) == stat.S_IFDIR | 0o2755


def test_a_caller_with_cap_fsetid_keeps_both_bits() -> None:
    # This test runs as root: CAP_FSETID.
    assert killpriv.suidgid_after(REG | 0o6755, 1234, 0, 0, os.getpid()) == REG | 0o6755


def test_a_caller_gone_without_capabilities_loses_them() -> None:
    """A pid that is no process: a non-root caller has no capability and no group."""
    gone = 1 << 22  # above the default pid_max
    assert killpriv.suidgid_after(REG | 0o6745, 7, 9, 9, gone) == REG | 0o0745
    assert killpriv.suidgid_after(REG | 0o6745, 9, 9, 9, gone) == REG | 0o2745  # in its group


def _upper_mode(ops: UnionOperations, name: bytes) -> int:
    assert ops.stack.upper is not None
    st = ops.stack.upper.lstat(name)
    assert st is not None
    return stat.S_IMODE(st.st_mode)


def test_a_write_asked_to_kill_clears_the_bits(make_ops: MakeOps) -> None:
    ops = make_ops({}, upper={"f": File("x", mode=0o6755)})
    ino = lookup_ino(ops, ROOT, b"f")
    fh = call(ops.open, ino, os.O_WRONLY, CTX).fh
    try:
        call(ops.write, fh, 0, b"y")
        assert _upper_mode(ops, b"f") == 0o6755  # not asked: kept
        call(ops.write, fh, 0, b"y", True)
        assert _upper_mode(ops, b"f") == 0o0755
    finally:
        call(ops.release, fh)


def test_a_setattr_asked_to_kill_clears_the_bits(make_ops: MakeOps) -> None:
    ops = make_ops({"f": File("xyz", mode=0o6755)}, upper={})
    ino = lookup_ino(ops, ROOT, b"f")
    attr, fields = setattr_request(size=1)
    fields.kill_suidgid = True
    call(ops.setattr, ino, attr, fields, None, CTX)
    assert _upper_mode(ops, b"f") == 0o0755
