"""Snapshot a mounted tree as plain data, and list the differences between two snapshots.

A snapshot maps each path (``bytes``, relative, ``b""`` for the root) to what a user can see
of it: type, permission bits, owner, size, link count, content, link target, device number
and the ``user.*``/``trusted.*`` xattrs. Symlinks are never followed. Inode numbers and
times are left out: two filesystems need not agree on them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections import Counter

Entry = dict[str, object]
Snapshot = dict[bytes, Entry]

SHOWN_XATTR_PREFIXES = ("user.", "trusted.")
INLINE_CONTENT = 64


def kind(mode: int) -> str:
    """The file type of *mode* as a word."""
    for test, name in (
        (stat.S_ISDIR, "dir"),
        (stat.S_ISREG, "file"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "chr"),
        (stat.S_ISBLK, "blk"),
        (stat.S_ISSOCK, "sock"),
    ):
        if test(mode):
            return name
    return f"unknown({mode:o})"


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def describe_stat(st: os.stat_result) -> Entry:
    """The comparable part of one ``stat`` result."""
    what = kind(st.st_mode)
    entry: Entry = {
        "type": what,
        "mode": oct(stat.S_IMODE(st.st_mode)),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }
    if what != "dir":
        entry["size"] = st.st_size
        entry["nlink"] = st.st_nlink
    if what in ("chr", "blk"):
        entry["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    return entry


def _content(path: bytes) -> object:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return f"open failed: {_errname(exc)}"
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as exc:
        return f"read failed: {_errname(exc)}"
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) <= INLINE_CONTENT:
        return data
    return f"sha256:{hashlib.sha256(data).hexdigest()[:16]} ({len(data)} bytes)"


def xattrs(path: bytes) -> object:
    """Sorted ``(name, value)`` of the shown xattrs; a string when listing fails."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        return f"listxattr failed: {_errname(exc)}"
    result: list[tuple[str, object]] = []
    for name in sorted(names):
        if not name.startswith(SHOWN_XATTR_PREFIXES):
            continue
        try:
            value: object = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            value = f"getxattr failed: {_errname(exc)}"
        result.append((name, value))
    return tuple(result)


def describe(path: bytes) -> Entry:
    """Everything compared about the entry at *path* (not followed if a symlink)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return {"type": "unstatable", "errno": _errname(exc)}
    entry = describe_stat(st)
    if entry["type"] == "file":
        entry["content"] = _content(path)
    elif entry["type"] == "symlink":
        try:
            entry["target"] = os.readlink(path)
        except OSError as exc:
            entry["target"] = f"readlink failed: {_errname(exc)}"
    entry["xattrs"] = xattrs(path)
    return entry


def _direntkind(dirent: os.DirEntry[bytes]) -> str:
    if dirent.is_symlink():
        return "symlink"
    if dirent.is_dir(follow_symlinks=False):
        return "dir"
    if dirent.is_file(follow_symlinks=False):
        return "file"
    return "other"


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel else name


def snapshot(root: os.PathLike[str] | str | bytes) -> Snapshot:
    """Everything visible below *root* (which is included as ``b""``)."""
    top = os.fsencode(root)
    snap: Snapshot = {b"": describe(top)}
    _walk(top, b"", snap)
    return snap


def _walk(top: bytes, rel: bytes, snap: Snapshot) -> None:
    here = _join(top, rel) if rel else top
    try:
        with os.scandir(here) as it:
            dirents = list(it)
    except OSError as exc:
        snap[rel]["readdir"] = f"failed: {_errname(exc)}"
        return
    dups = sorted(name for name, n in Counter(d.name for d in dirents).items() if n > 1)
    if dups:
        snap[rel]["duplicate_names"] = dups
    for dirent in sorted(dirents, key=lambda d: d.name):
        child = _join(rel, dirent.name)
        entry = describe(dirent.path)
        kind = entry["type"]
        listed = _direntkind(dirent)
        expected = kind if kind in ("dir", "file", "symlink") else "other"
        if kind != "unstatable" and listed != expected:
            entry["readdir_type"] = listed
        snap[child] = entry
        if kind == "dir":
            _walk(top, child, snap)


def drop_unstatable(snap: Snapshot) -> Snapshot:
    """*snap* without names that readdir listed but lstat says do not exist.

    Kernel overlayfs lists whiteouts of a directory that is not merged (it exists in one
    layer only, or the topmost one is opaque): it reads that directory like a plain one, but
    its lookup hides them. unionfs hides markers everywhere, as its contract says.
    """
    return {
        path: entry
        for path, entry in snap.items()
        if not (entry["type"] == "unstatable" and entry.get("errno") == "ENOENT")
    }


def show_path(path: bytes) -> str:
    return repr("/" + path.decode("utf-8", "backslashreplace"))


def diff_trees(
    a: Snapshot, b: Snapshot, labels: tuple[str, str] = ("kernel", "unionfs"), limit: int = 200
) -> list[str]:
    """Readable differences between two snapshots; empty when they agree."""
    la, lb = labels
    out: list[str] = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            out.append(f"{show_path(path)}: only in {la}: {a[path]}")
        elif path not in a:
            out.append(f"{show_path(path)}: only in {lb}: {b[path]}")
        else:
            ea, eb = a[path], b[path]
            for key in sorted(ea.keys() | eb.keys()):
                if ea.get(key) != eb.get(key):
                    out.append(
                        f"{show_path(path)}: {key}: {la}={ea.get(key)!r} {lb}={eb.get(key)!r}"
                    )
    if len(out) > limit:
        out[limit:] = [f"... and {len(out) - limit} more differences"]
    return out


def probe(root: os.PathLike[str] | str | bytes, rel: bytes) -> dict[str, object]:
    """``lstat`` and ``stat`` of *rel* below *root*: the comparable result or the errno."""
    path = _join(os.fsencode(root), rel) if rel else os.fsencode(root)
    result: dict[str, object] = {}
    for label, call in (("lstat", os.lstat), ("stat", os.stat)):
        try:
            result[label] = describe_stat(call(path))
        except OSError as exc:
            result[label] = _errname(exc)
    return result


def marker_leaks(snap: Snapshot) -> list[str]:
    """Overlay markers visible in a snapshot: ``.wh.`` names, 0/0 devices, overlay xattrs."""
    leaks = []
    for path, entry in sorted(snap.items()):
        name = path.rpartition(b"/")[2]
        if name.startswith(b".wh."):
            leaks.append(f"{show_path(path)}: marker name")
        if entry.get("type") == "chr" and entry.get("rdev") == (0, 0):
            leaks.append(f"{show_path(path)}: whiteout device")
        found = entry.get("xattrs")
        for key, _ in found if isinstance(found, tuple) else ():
            if key.startswith(("trusted.overlay.", "user.overlay.")):
                leaks.append(f"{show_path(path)}: xattr {key}")
    return leaks
