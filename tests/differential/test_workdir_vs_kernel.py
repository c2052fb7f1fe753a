"""The work directory against kernel overlayfs: ``WORKDIR/work`` is made afresh at every
mount with mode 000 and no POSIX ACL, so nothing built there (copy-ups, new entries)
inherits a default ACL the work directory's parent carries."""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

from mountutil import kernel_overlay, unionfs_mount

UNDEFINED = 0xFFFFFFFF
# system.posix_acl_default: owner, user 65533, group, mask and others all rwx.
GENEROUS_DEFAULT_ACL = struct.pack(
    "<I" + "HHI" * 5,
    2, 0x01, 7, UNDEFINED, 0x02, 7, 65533, 0x04, 7, UNDEFINED,
    0x10, 7, UNDEFINED, 0x20, 7, UNDEFINED,
)  # fmt: skip
ACL_NAMES = ("system.posix_acl_access", "system.posix_acl_default")


def _acls(path: Path) -> list[str]:
    return sorted(n for n in os.listxattr(path, follow_symlinks=False) if n in ACL_NAMES)


def _observe(base: Path, mount: Callable[..., object]) -> dict[str, object]:
    """Build one stack under *base* with a generous default ACL on the work directory,
    copy up a file and a directory, create a file and a directory, report what they got."""
    lower, upper, work, mnt = (base / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower / "d", upper, work, mnt):
        d.mkdir(parents=True)
    (lower / "f").write_bytes(b"f")
    (lower / "d" / "g").write_bytes(b"g")
    os.chmod(lower / "f", 0o640)
    os.setxattr(work, "system.posix_acl_default", GENEROUS_DEFAULT_ACL)
    (work / "work").mkdir()  # an earlier mount's, with the inherited ACL
    with mount([lower], mnt, upper, work):  # type: ignore[attr-defined]
        with open(mnt / "f", "ab") as f:
            f.write(b"+")
        with open(mnt / "d" / "g", "ab") as f:
            f.write(b"+")
        (mnt / "new").write_bytes(b"n")
        (mnt / "d" / "newdir").mkdir()
        seen = {name: _acls(mnt / name) for name in ("f", "d", "d/g", "new", "d/newdir")}
        modes = {name: stat.filemode(os.lstat(mnt / name).st_mode) for name in seen}
    st = os.lstat(work / "work")
    return {
        "acls": seen,
        "modes": modes,
        "work mode": stat.filemode(st.st_mode),
        "work acls": _acls(work / "work"),
    }


def test_work_directory_is_mode_000_without_acl_and_copies_inherit_nothing(
    newdir: Callable[..., Path],
) -> None:
    kernel = _observe(newdir("k"), kernel_overlay)
    ours = _observe(newdir("u"), unionfs_mount)
    assert kernel["work mode"] == "d---------" and kernel["work acls"] == []
    assert ours == kernel
