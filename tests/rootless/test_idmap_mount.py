"""uidmapping=/gidmapping=/squash_to_* on a real mount (as root: the translation does not
depend on who mounts). Owners are translated at the FUSE edge: nothing is copied up to
show them, chown and new entries store the translated ids."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mountutil import unionfs_mount

PODMAN = "0:1000:1:1:110000:65536"


def _lower(newdir: Callable[..., Path]) -> Path:
    lower = newdir("lower")
    (lower / "root_owned").write_bytes(b"r")
    (lower / "user_owned").write_bytes(b"u")
    os.chown(lower / "user_owned", 1000, 1000)
    (lower / "dir").mkdir()
    os.chown(lower / "dir", 5, 7)
    return lower


def _owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def test_uidmapping_shows_mapped_owners_and_stores_chown_back(
    newdir: Callable[..., Path],
) -> None:
    lower, upper, work, mnt = _lower(newdir), newdir("upper"), newdir("work"), newdir("mnt")
    opts = [f"uidmapping={PODMAN},gidmapping=:{PODMAN}"]  # podman's leading-colon form too
    with unionfs_mount([lower], mnt, upper, work, extra_opts=opts):
        assert _owner(mnt / "root_owned") == (1000, 1000)
        assert _owner(mnt / "user_owned") == (110999, 110999)
        assert _owner(mnt / "dir") == (110004, 110006)
        assert os.listdir(upper) == []  # shown without copying anything up
        os.chown(mnt / "root_owned", 110001, 1000)
        assert _owner(mnt / "root_owned") == (110001, 1000)
        (mnt / "new").write_bytes(b"n")  # made by root (0): no mapping -> overflow id
        assert _owner(mnt / "new") == (175533, 175533)
    assert _owner(upper / "root_owned") == (2, 0)  # 110001 = 110000 + (2 - 1)
    assert _owner(upper / "new") == (65534, 65534)
    assert _owner(lower / "root_owned") == (0, 0)


def test_squash_shows_one_owner_and_keeps_what_is_stored(newdir: Callable[..., Path]) -> None:
    lower, upper, work, mnt = _lower(newdir), newdir("upper"), newdir("work"), newdir("mnt")
    with unionfs_mount([lower], mnt, upper, work, extra_opts=["squash_to_uid=42,squash_to_root"]):
        assert {_owner(mnt / n) for n in ("root_owned", "user_owned", "dir")} == {(42, 0)}
        os.chown(mnt / "user_owned", 3, 4)
        assert _owner(mnt / "user_owned") == (42, 0)
    assert _owner(upper / "user_owned") == (3, 4)
