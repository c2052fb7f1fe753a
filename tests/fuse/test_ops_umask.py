"""UnionOperations, not mounted: the umask of a create, mkdir or mknod when the kernel
leaves it to us (FUSE_DONT_MASK): applied unless the upper parent has a default ACL; and
not applied again when the kernel has masked the mode already (no FUSE_DONT_MASK)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pyfuse3
import pytest
from layers import Dir

from unionfs.fuse.ops import UnionOperations
from unionfs.union import acl
from unionfs.union.acl import GROUP_OBJ, OTHER, USER_OBJ, Entry

from .conftest import MakeOps
from .driver import ROOT, call, lookup_ino

UNDEFINED = 0xFFFFFFFF
GROUP_SHARED = acl.pack((Entry(USER_OBJ, 7, UNDEFINED), Entry(GROUP_OBJ, 7, UNDEFINED),
                         Entry(OTHER, 0, UNDEFINED)))  # fmt: skip


@pytest.fixture(autouse=True)
def daemon_umask() -> Iterator[None]:
    old = os.umask(0)  # as the daemon runs (fuse/mount.py)
    yield
    os.umask(old)


def _ctx(umask: int) -> pyfuse3.RequestContext:
    return SimpleNamespace(uid=0, gid=0, pid=os.getpid(), umask=umask)  # type: ignore[return-value]


def _modes(ops: UnionOperations, parent: bytes) -> dict[str, str]:
    assert ops.stack.upper is not None
    base = Path(os.fsdecode(ops.stack.upper.root)) / os.fsdecode(parent)
    return {p.name: stat.filemode(p.lstat().st_mode) for p in sorted(base.iterdir())}


def _create_all(ops: UnionOperations, parent: int, umask: int) -> None:
    ctx = _ctx(umask)
    call(ops.mkdir, parent, b"s", 0o777, ctx)
    call(ops.mknod, parent, b"p", stat.S_IFIFO | 0o666, 0, ctx)
    info, _ = call(ops.create, parent, b"f", 0o666, os.O_WRONLY, ctx)
    call(ops.release, info.fh)


@pytest.mark.parametrize("unmasked", [True, False])
def test_umask_is_ours_to_apply_only_with_dont_mask(make_ops: MakeOps, unmasked: bool) -> None:
    ops = make_ops({"plain/": {}, "acl/": Dir(xattrs={acl.DEFAULT: GROUP_SHARED})}, upper={})
    ops.unmasked = unmasked
    for name in (b"plain", b"acl"):
        _create_all(ops, lookup_ino(ops, ROOT, name), 0o022)
    if unmasked:
        # The umask where no default ACL is; the ACL's bits where one is (copied up with
        # its directory), as kernel overlayfs and its upper filesystem do.
        assert _modes(ops, b"plain") == {"f": "-rw-r--r--", "p": "prw-r--r--", "s": "drwxr-xr-x"}
        assert _modes(ops, b"acl") == {"f": "-rw-rw----", "p": "prw-rw----", "s": "drwxrwx---"}
    else:
        # The kernel masked the modes already: no umask applied again; a default ACL
        # still narrows them (its bits are not chmod-ed away).
        assert _modes(ops, b"plain") == {"f": "-rw-rw-rw-", "p": "prw-rw-rw-", "s": "drwxrwxrwx"}
        assert _modes(ops, b"acl") == {"f": "-rw-rw----", "p": "prw-rw----", "s": "drwxrwx---"}


def test_dont_mask_is_asked_for_when_the_binding_offers_it() -> None:
    from unionfs.fuse import features

    assert UnionOperations.enable_dont_mask == ("dont_mask" in features.available())
