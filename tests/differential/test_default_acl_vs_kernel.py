"""New entries under a default ACL, against kernel overlayfs (issue 19, point 1).

The kernel's overlay leaves the umask to the upper filesystem, which applies it only where
the parent has no default ACL; where it has one, the ACL decides the new entry's mode and
ACLs. Both sides get the same layers and the same creations, under umask 0 and 022: in a
directory made through the mount, in a set-gid one, nested, in a lower directory with a
default ACL (copied up on the way), over a whiteout (built in the work directory), and
with a default ACL naming a user (so the new file gets an access ACL); a file made with
O_TMPFILE and then named too. Modes, owners and ACLs seen through the mount and in the
upper must agree.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mountutil import kernel_overlay, unionfs_mount

from unionfs.fuse import features

TMPFILE = "tmpfile" in features.available()  # O_TMPFILE (the patched binding)

USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF
ACL_NAMES = ("system.posix_acl_access", "system.posix_acl_default")


def acl(*entries: tuple[int, int] | tuple[int, int, int]) -> bytes:
    """An ACL xattr value of (tag, perm[, id]) entries, in the kernel's order."""
    body = b"".join(
        struct.pack("<HHI", e[0], e[1], e[2] if len(e) == 3 else UNDEFINED)  # type: ignore[misc]
        for e in entries
    )
    return struct.pack("<I", 2) + body


# setfacl -d --set u::rwx,g::rwx,o::- (the reproduction)
GROUP_SHARED = acl((USER_OBJ, 7), (GROUP_OBJ, 7), (OTHER, 0))
# setfacl -d --set u::rwx,u:65533:rwx,g::r-x,m::rwx,o::r-x (not equivalent to a mode)
NAMED_USER = acl((USER_OBJ, 7), (USER, 7, 65533), (GROUP_OBJ, 5), (MASK, 7), (OTHER, 5))


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def acl_text(value: bytes) -> str:
    """*value* as getfacl's short form would show it ("u::rwx,u:65533:rwx,m::r-x,...")."""
    tags = {USER_OBJ: "u:", USER: "u:", GROUP_OBJ: "g:", GROUP: "g:", MASK: "m:", OTHER: "o:"}
    parts = []
    for offset in range(4, len(value), 8):
        tag, perm, id_ = struct.unpack_from("<HHI", value, offset)
        who = "" if id_ == UNDEFINED else str(id_)
        bits = "".join(c if perm & b else "-" for c, b in zip("rwx", (4, 2, 1), strict=True))
        parts.append(f"{tags[tag]}{who}:{bits}")
    return ",".join(parts)


def _describe(path: Path) -> str:
    """Mode, group and ACLs of *path*, in one line."""
    st = os.lstat(path)
    line = f"{stat.filemode(st.st_mode)} gid {st.st_gid}"
    if not stat.S_ISLNK(st.st_mode):
        for name in ACL_NAMES:
            if name in os.listxattr(path, follow_symlinks=False):
                value = os.getxattr(path, name, follow_symlinks=False)
                line += f" {name[17:]} {acl_text(value)}"
    return line


def _populate(d: Path) -> list[str]:
    """Create a file, a directory (with a directory and a file in it), a fifo and a
    symlink in *d*; their names relative to *d*."""
    (d / "f").write_bytes(b"f")
    os.close(os.open(d / "x", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o777))
    (d / "s").mkdir(0o777)
    (d / "s" / "t").mkdir(0o755)
    (d / "s" / "g").write_bytes(b"g")
    os.mkfifo(d / "p", 0o666)
    os.symlink("f", d / "l")
    if not TMPFILE:
        return ["f", "x", "s", "s/t", "s/g", "p", "l"]
    unnamed = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o666)  # the upper's O_TMPFILE decides
    where = os.open(d, os.O_PATH | os.O_DIRECTORY)
    try:  # linkat(AT_SYMLINK_FOLLOW); without a dir_fd Python calls link(2), which would
        # link the /proc magic link itself (EXDEV)
        os.link(f"/proc/self/fd/{unnamed}", "u", dst_dir_fd=where, follow_symlinks=True)
    finally:
        os.close(where)
        os.close(unnamed)
    return ["f", "x", "s", "s/t", "s/g", "p", "l", "u"]


def _observe(base: Path, mount: Callable[..., object]) -> dict[str, str]:
    lower, upper, work, mnt = (base / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower / "ld" / "w", upper, work, mnt):
        d.mkdir(parents=True)
    os.chmod(lower / "ld", 0o755)
    os.setxattr(lower / "ld", "system.posix_acl_default", GROUP_SHARED)
    (lower / "ld" / "w" / "gone").write_bytes(b"below")
    (lower / "ld" / "gonedir").mkdir()
    (lower / "ld" / "gonefile").write_bytes(b"below")
    seen: dict[str, str] = {}
    with mount([lower], mnt, upper, work):  # type: ignore[attr-defined]
        for mask in (0, 0o022):
            top = mnt / f"m{mask:03o}"
            top.mkdir(0o755)
            made = {"d": GROUP_SHARED, "sgid": GROUP_SHARED, "named": NAMED_USER, "plain": None}
            for name, default in made.items():
                (top / name).mkdir(0o777 if name == "plain" else 0o755)
                if default is not None:
                    os.setxattr(top / name, "system.posix_acl_default", default)
            os.chown(top / "sgid", 0, 100)
            os.chmod(top / "sgid", 0o2775)
            with umask(mask):
                for name in made:
                    for path in _populate(top / name):
                        seen[f"m{mask:03o}/{name}/{path}"] = _describe(top / name / path)
        # A lower directory with a default ACL: copied up as the first entry is made in
        # it; over a whiteout, a new entry is built in the work directory.
        (mnt / "ld" / "w" / "gone").unlink()
        (mnt / "ld" / "gonedir").rmdir()
        (mnt / "ld" / "gonefile").unlink()
        with umask(0o022):
            (mnt / "ld" / "new").write_bytes(b"n")
            (mnt / "ld" / "w" / "gone").write_bytes(b"again")
            (mnt / "ld" / "gonedir").mkdir(0o777)
            (mnt / "ld" / "gonefile").write_bytes(b"again")
        for path in ("ld", "ld/new", "ld/w", "ld/w/gone", "ld/gonedir", "ld/gonefile"):
            seen[path] = _describe(mnt / path)
    for p in sorted(upper.rglob("*")):
        seen[f"upper {p.relative_to(upper)}"] = _describe(p)
    return seen


def test_new_entries_take_their_mode_from_the_parents_default_acl(
    newdir: Callable[..., Path],
) -> None:
    kernel = _observe(newdir("k"), kernel_overlay)
    ours = _observe(newdir("u"), unionfs_mount)
    # The reproduction, as the kernel answers it.
    assert kernel["m000/d/f"].startswith("-rw-rw---- ")
    assert kernel["m000/d/s"].startswith("drwxrwx--- ")
    assert kernel["m022/d/f"].startswith("-rw-rw---- ")
    assert kernel["m022/plain/f"].startswith("-rw-r--r-- ")
    differ = [f"{k}: kernel {v!r}, unionfs {ours.get(k)!r}" for k, v in kernel.items()
              if v != ours.get(k)]  # fmt: skip
    assert not differ, "\n".join(differ)
    assert ours.keys() == kernel.keys()
