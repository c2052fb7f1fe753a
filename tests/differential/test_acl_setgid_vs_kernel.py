"""Setting an access ACL, against kernel overlayfs (issue 19, point 2).

``posix_acl_update_mode``: the ACL's owner, group (or mask) and other entries become the
mode's permission bits, an ACL a mode can say is not stored, and S_ISGID goes when the
caller is neither in the file's group nor holds CAP_FSETID, as a chmod would clear it. Both
sides get the same layers; the same ACLs are set on upper and lower files and directories
by their owner outside their group, by a member of the group, and by root.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from mountutil import kernel_overlay, unionfs_mount
from test_default_acl_vs_kernel import (
    GROUP,
    GROUP_OBJ,
    MASK,
    OTHER,
    USER,
    USER_OBJ,
    acl,
    acl_text,
)

ACCESS = "system.posix_acl_access"
# setfacl -m u::rwx,g::rwx,o::rwx (a mode can say it: the kernel stores no ACL)
ALL = acl((USER_OBJ, 7), (GROUP_OBJ, 7), (OTHER, 7))
# setfacl -m u::rw-,u:65533:rwx,g::r--,g:102:r-x,m::r-x,o::--- (stored; the mask is the group class)
NAMED = acl((USER_OBJ, 6), (USER, 7, 65533), (GROUP_OBJ, 4), (GROUP, 5, 102), (MASK, 5), (OTHER, 0))
OWNER, GROUP_ID, OUTSIDER_GID = 100, 100, 101


def _set_acl_as(parent: Path, name: str, value: bytes, uid: int, gid: int) -> str:
    """Set *value* as the access ACL of *name* in *parent* from a process of *uid*:*gid*
    alone (no other group; root keeps its capabilities); what the call said."""
    dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child answers by its exit status
            code = 0
            try:
                os.fchdir(dir_fd)
                if uid != 0:
                    os.setgroups([])
                    os.setgid(gid)
                    os.setuid(uid)
                os.setxattr(name, ACCESS, value, follow_symlinks=False)
            except OSError as exc:
                code = exc.errno or 255
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(dir_fd)
    code = os.waitstatus_to_exitcode(status)
    return "ok" if code == 0 else errno.errorcode.get(code, str(code))


def _describe(path: Path) -> str:
    st = os.lstat(path)
    line = f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
    if ACCESS in os.listxattr(path):
        line += " " + acl_text(os.getxattr(path, ACCESS))
    return line


CALLERS = {"outsider": (OWNER, OUTSIDER_GID), "member": (OWNER, GROUP_ID), "root": (0, 0)}


def _observe(base: Path, mount: Callable[..., object]) -> dict[str, str]:
    lower, upper, work, mnt = (base / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower, upper, work, mnt):
        d.mkdir(parents=True)
    names = [f"{where}-{kind}-{who}-{which}" for where in ("lower", "upper")
             for kind in ("f", "d") for who in CALLERS for which in ("all", "named")]  # fmt: skip
    for name in names:
        if name.startswith("lower"):
            path = lower / name
            path.mkdir() if "-d-" in name else path.write_bytes(b"x")
            os.chown(path, OWNER, GROUP_ID)
            os.chmod(path, 0o2750)
    seen: dict[str, str] = {}
    with mount([lower], mnt, upper, work):  # type: ignore[attr-defined]
        for name in names:
            path = mnt / name
            if name.startswith("upper"):
                path.mkdir() if "-d-" in name else path.write_bytes(b"x")
                os.chown(path, OWNER, GROUP_ID)
                os.chmod(path, 0o2750)
            uid, gid = CALLERS[name.split("-")[2]]
            value = ALL if name.endswith("all") else NAMED
            said = _set_acl_as(mnt, name, value, uid, gid)
            seen[name] = f"{said}: {_describe(path)}"
    for p in sorted(upper.iterdir()):
        seen[f"upper {p.name}"] = _describe(p)
    return seen


def test_setting_an_access_acl_sets_the_mode_and_clears_setgid_as_chmod_does(
    newdir: Callable[..., Path],
) -> None:
    kernel = _observe(newdir("k"), kernel_overlay)
    ours = _observe(newdir("u"), unionfs_mount)
    # The reproduction, as the kernel answers it.
    assert kernel["upper-f-outsider-all"] == "ok: -rwxrwxrwx 100:100"
    assert kernel["upper-f-member-all"] == "ok: -rwxrwsrwx 100:100"
    differ = [f"{k}: kernel {v!r}, unionfs {ours.get(k)!r}" for k, v in kernel.items()
              if v != ours.get(k)]  # fmt: skip
    assert not differ, "\n".join(differ)
    assert ours.keys() == kernel.keys()
