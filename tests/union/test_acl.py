"""``acl``: what a new entry inherits from a default ACL, and the mode an access ACL sets,
computed in Python and compared with what the kernel's own filesystem (ext4 under the
test's temporary directory) does for the same ACLs and modes."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from unionfs.union import acl
from unionfs.union.acl import GROUP, GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, Entry

UNDEFINED = 0xFFFFFFFF


def _acl(*entries: tuple[int, int] | tuple[int, int, int]) -> bytes:
    return acl.pack(tuple(Entry(e[0], e[1], e[2] if len(e) == 3 else UNDEFINED)  # type: ignore[misc]
                          for e in entries))  # fmt: skip


DEFAULTS = [
    _acl((USER_OBJ, 7), (GROUP_OBJ, 7), (OTHER, 0)),
    _acl((USER_OBJ, 6), (GROUP_OBJ, 5), (OTHER, 4)),
    _acl((USER_OBJ, 7), (USER, 7, 65533), (GROUP_OBJ, 5), (MASK, 7), (OTHER, 5)),
    _acl((USER_OBJ, 5), (GROUP_OBJ, 7), (GROUP, 6, 100), (MASK, 3), (OTHER, 1)),
]
MODES = [0o777, 0o755, 0o640, 0o1777, 0o000]


def _read_acl(path: Path, name: bytes) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return None
        raise


@pytest.mark.parametrize("default", DEFAULTS, ids=range(len(DEFAULTS)))
def test_inherit_gives_what_the_filesystem_gives(tmp_path: Path, default: bytes) -> None:
    parent = tmp_path / "p"
    parent.mkdir()
    os.setxattr(parent, acl.DEFAULT, default)
    old = os.umask(0o077)  # a default ACL takes the umask's place: it must not matter
    try:
        for mode in MODES:
            for kind in ("d", "f"):
                path = parent / f"{kind}{mode:o}"
                if kind == "d":
                    path.mkdir(mode)
                else:
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
                ifmt = stat.S_IFDIR if kind == "d" else stat.S_IFREG
                got = acl.inherit(default, ifmt | mode)
                st = os.lstat(path)
                assert (stat.filemode(got.mode), got.access, got.default) == (
                    stat.filemode(st.st_mode),
                    _read_acl(path, acl.ACCESS),
                    _read_acl(path, acl.DEFAULT),
                ), (kind, oct(mode))
    finally:
        os.umask(old)


@pytest.mark.parametrize("access", DEFAULTS, ids=range(len(DEFAULTS)))
def test_mode_of_an_access_acl_is_what_setting_it_leaves(tmp_path: Path, access: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    os.chmod(path, 0o4777)
    before = os.lstat(path).st_mode
    os.setxattr(path, acl.ACCESS, access)
    assert stat.filemode(acl.mode_of(access, before)) == stat.filemode(os.lstat(path).st_mode)


def test_a_malformed_acl_is_einval() -> None:
    for value in (b"", b"\x02\x00\x00\x00\x01", _acl((USER_OBJ, 7), (OTHER, 7))):
        with pytest.raises(OSError) as info:
            acl.mode_of(value, 0o644)
        assert info.value.errno == errno.EINVAL
