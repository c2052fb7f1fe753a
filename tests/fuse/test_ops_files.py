"""UnionOperations, not mounted: open/read, xattrs, statfs, and refusals on a read-only stack."""

from __future__ import annotations

import errno
import os

import pyfuse3
import pytest
from layers import Dir, File, Opaque, Symlink

from unionfs.fuse.ops import UnionOperations

from .conftest import MakeOps
from .driver import CTX, ROOT, call, fuse_errno, lookup_ino


def open_read(ops: UnionOperations, ino: int, flags: int = os.O_RDONLY) -> int:
    info = call(ops.open, ino, flags, CTX)
    return int(info.fh)


def test_open_and_read_the_top_file(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "upper data"}, {"a": "lower data, longer"})
    fh = open_read(ops, lookup_ino(ops, ROOT, b"a"))
    assert call(ops.read, fh, 0, 4096) == b"upper data"
    assert call(ops.read, fh, 6, 2) == b"da"
    assert call(ops.read, fh, 100, 10) == b""
    call(ops.release, fh)


def test_open_reads_a_file_of_a_lower_layer(make_ops: MakeOps) -> None:
    ops = make_ops({"d/": {}}, {"d/": {"f": "deep"}})
    f = lookup_ino(ops, lookup_ino(ops, ROOT, b"d"), b"f")
    fh = open_read(ops, f)
    assert call(ops.read, fh, 0, 100) == b"deep"
    call(ops.release, fh)


def test_open_lets_the_kernel_keep_cached_pages(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "x"})
    info = call(ops.open, lookup_ino(ops, ROOT, b"a"), os.O_RDONLY, CTX)
    assert info.keep_cache
    call(ops.release, info.fh)


def test_each_open_gets_its_own_handle(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "x"})
    ino = lookup_ino(ops, ROOT, b"a")
    first, second = open_read(ops, ino), open_read(ops, ino)
    assert first != second
    call(ops.release, first)
    assert call(ops.read, second, 0, 1) == b"x"
    call(ops.release, second)


def test_read_after_release_is_ebadf(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "x"})
    fh = open_read(ops, lookup_ino(ops, ROOT, b"a"))
    call(ops.release, fh)
    assert fuse_errno(ops.read, fh, 0, 1) == errno.EBADF



def test_flush_answers_enosys_so_the_kernel_stops_sending_it(make_ops: MakeOps) -> None:
    """A close needs nothing of us; ENOSYS switches FLUSH off for the whole mount."""
    ops = make_ops({"a": "x"})
    fh = open_read(ops, lookup_ino(ops, ROOT, b"a"))
    assert fuse_errno(ops.flush, fh) == errno.ENOSYS
    call(ops.release, fh)


@pytest.mark.parametrize(
    "flags", [os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND]
)
def test_open_for_write_on_a_read_only_stack_is_erofs(make_ops: MakeOps, flags: int) -> None:
    ops = make_ops({"a": "x"})
    ino = lookup_ino(ops, ROOT, b"a")
    before = set(os.listdir("/proc/self/fd"))
    assert fuse_errno(ops.open, ino, flags, CTX) == errno.EROFS
    assert set(os.listdir("/proc/self/fd")) == before  # nothing was opened for the refusal


def test_access_for_write_on_a_read_only_stack_is_erofs(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "x"})
    ino = lookup_ino(ops, ROOT, b"a")
    assert fuse_errno(ops.access, ino, os.W_OK, CTX) == errno.EROFS
    assert call(ops.access, ino, os.R_OK, CTX)


def test_setattr_on_a_read_only_stack_is_erofs(make_ops: MakeOps) -> None:
    ops = make_ops({"a": "x"})
    ino = lookup_ino(ops, ROOT, b"a")
    attr = pyfuse3.EntryAttributes()
    attr.st_mode = 0o600
    fields = pyfuse3.SetattrFields()
    assert fuse_errno(ops.setattr, ino, attr, fields, None, CTX) == errno.EROFS


# -- xattrs --------------------------------------------------------------------------------
XATTRS = {
    "user.visible": "1",
    "trusted.other": "t",
    "user.overlay.opaque": "y",
    "user.overlay.origin": "o",
    "trusted.overlay.redirect": "r",
}


def test_listxattr_hides_the_overlays_private_xattrs(make_ops: MakeOps) -> None:
    ops = make_ops({"a": File("x", xattrs=XATTRS)})
    ino = lookup_ino(ops, ROOT, b"a")
    assert sorted(call(ops.listxattr, ino, CTX)) == [b"trusted.other", b"user.visible"]


@pytest.mark.parametrize(
    "name", [b"user.overlay.opaque", b"user.overlay.origin", b"trusted.overlay.redirect"]
)
def test_getxattr_of_a_private_xattr_is_enoattr(make_ops: MakeOps, name: bytes) -> None:
    ops = make_ops({"a": File("x", xattrs=XATTRS)})
    ino = lookup_ino(ops, ROOT, b"a")
    assert fuse_errno(ops.getxattr, ino, name, CTX) == pyfuse3.ENOATTR


def test_getxattr_answers_ordinary_xattrs(make_ops: MakeOps) -> None:
    ops = make_ops({"a": File("x", xattrs=XATTRS)})
    ino = lookup_ino(ops, ROOT, b"a")
    assert call(ops.getxattr, ino, b"user.visible", CTX) == b"1"
    assert call(ops.getxattr, ino, b"trusted.other", CTX) == b"t"
    assert fuse_errno(ops.getxattr, ino, b"user.absent", CTX) == pyfuse3.ENOATTR


@pytest.mark.parametrize("form", ["trusted", "user"])
def test_opaque_directory_shows_no_opaque_xattr(make_ops: MakeOps, form: str) -> None:
    ops = make_ops({"o/": Opaque({}, form=form)}, {"o/": {"x": ""}})
    ino = lookup_ino(ops, ROOT, b"o")
    assert call(ops.listxattr, ino, CTX) == []
    name = f"{form}.overlay.opaque".encode()
    assert fuse_errno(ops.getxattr, ino, name, CTX) == pyfuse3.ENOATTR


def test_xattrs_come_from_the_top_layer_of_a_merged_directory(make_ops: MakeOps) -> None:
    ops = make_ops(
        {"d/": Dir({}, xattrs={"user.top": "1"})}, {"d/": Dir({}, xattrs={"user.low": "2"})}
    )
    ino = lookup_ino(ops, ROOT, b"d")
    assert call(ops.listxattr, ino, CTX) == [b"user.top"]
    assert fuse_errno(ops.getxattr, ino, b"user.low", CTX) == pyfuse3.ENOATTR


def test_xattrs_of_a_symlink_are_its_own_not_its_targets(make_ops: MakeOps) -> None:
    ops = make_ops({"target": File("", xattrs={"user.secret": "1"}), "s": Symlink("target")})
    os.setxattr(
        os.path.join(ops.stack.layers[0].root, "s"), b"trusted.own", b"2", follow_symlinks=False
    )
    s = lookup_ino(ops, ROOT, b"s")
    assert call(ops.listxattr, s, CTX) == [b"trusted.own"]
    assert call(ops.getxattr, s, b"trusted.own", CTX) == b"2"
    assert fuse_errno(ops.getxattr, s, b"user.secret", CTX) == pyfuse3.ENOATTR


# -- statfs --------------------------------------------------------------------------------
def test_statfs_reports_the_top_layers_filesystem(make_ops: MakeOps) -> None:
    ops = make_ops({"a": ""}, {"b": ""})
    data = call(ops.statfs, CTX)
    st = os.statvfs(ops.stack.layers[0].root)
    assert (data.f_bsize, data.f_frsize, data.f_blocks) == (st.f_bsize, st.f_frsize, st.f_blocks)
    assert data.f_files == st.f_files
    assert 0 < data.f_namemax <= 255
    assert abs(data.f_bfree - st.f_bfree) < st.f_blocks // 100 + 1000
