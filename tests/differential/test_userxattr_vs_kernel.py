"""``userxattr`` and xwhiteouts against kernel overlayfs.

With ``userxattr`` the kernel's own xattrs are ``user.overlay.*`` alone: ``trusted.overlay.*``
is data (shown, stored as given, copied up), a name set in ``user.overlay.*`` is stored
escaped, markers are written there. An xwhiteout (Linux 6.7) is an empty regular file
marked ``overlay.whiteout`` in a directory marked ``overlay.opaque=x``: it hides the name,
and the directory is not opaque. Both sides get the same layers and the same operations;
what they show and what their uppers record are compared (records of unionfs's own,
``overlay.unionfs.*``, and the kernel's ``origin``/``impure`` aside).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mountutil import kernel_overlay, unionfs_mount


def _build(base: Path, ns: str) -> tuple[Path, Path]:
    """Two lowers whose markers are in namespace *ns* ("user" or "trusted")."""
    top, bottom = base / "top", base / "bottom"
    for d in ("d", "o_trusted", "o_user"):
        (top / d).mkdir(parents=True)
        (bottom / d).mkdir(parents=True)
    for path in ("d/f", "d/t", "d/g", "d/h", "o_trusted/below", "o_user/below", "a"):
        (bottom / path).write_bytes(b"below " + path.encode())
    os.setxattr(top / "d", f"{ns}.overlay.opaque", b"x")  # has xwhiteouts, is not opaque
    (top / "d" / "f").write_bytes(b"")
    os.setxattr(top / "d" / "f", f"{ns}.overlay.whiteout", b"")  # an xwhiteout
    other = "trusted" if ns == "user" else "user"
    (top / "d" / "t").write_bytes(b"")
    os.setxattr(top / "d" / "t", f"{other}.overlay.whiteout", b"")  # not this mount's
    (top / "d" / "g").write_bytes(b"not empty")
    os.setxattr(top / "d" / "g", f"{ns}.overlay.whiteout", b"")  # not empty: a file
    (top / "tx").write_bytes(b"tx")
    os.setxattr(top / "tx", "trusted.overlay.foo", b"bar")
    os.setxattr(top / "tx", "user.overlay.foo", b"baz")
    os.setxattr(top / "o_trusted", "trusted.overlay.opaque", b"y")
    os.setxattr(top / "o_user", "user.overlay.opaque", b"y")
    return top, bottom


def _xattrs(path: Path) -> dict[str, bytes]:
    found = {}
    for name in sorted(os.listxattr(path, follow_symlinks=False)):
        if ".unionfs." in name or name.endswith((".origin", ".impure")):
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            found[name] = f"errno {exc.errno}".encode()
    return found


def _observe(mnt: Path, upper: Path) -> dict[str, object]:
    seen: dict[str, object] = {}
    for d in ("d", "o_trusted", "o_user"):
        seen[f"ls {d}"] = sorted(os.listdir(mnt / d))
    for name in ("d/f", "d/t", "d/g"):
        seen[f"stat {name}"] = (mnt / name).exists()
    seen["tx xattrs"] = _xattrs(mnt / "tx")
    (mnt / "new").write_bytes(b"n")
    for name, value in (("trusted.overlay.set", b"1"), ("user.overlay.set", b"2"),
                        ("trusted.overlay.opaque", b"y")):  # fmt: skip
        try:
            os.setxattr(mnt / "new", name, value)
        except OSError as exc:
            seen[f"setxattr {name}"] = errno.errorcode[exc.errno or 0]
    seen["new xattrs"] = _xattrs(mnt / "new")
    seen["new stored"] = _xattrs(upper / "new")
    with open(mnt / "tx", "ab") as f:  # copy-up: trusted.overlay.foo is data, comes along
        f.write(b"+")
    seen["tx stored"] = _xattrs(upper / "tx")
    os.unlink(mnt / "a")
    st = os.lstat(upper / "a")
    seen["whiteout"] = (oct(st.st_mode), st.st_rdev)
    for name in os.listdir(mnt / "o_user"):
        os.unlink(mnt / "o_user" / name)
    os.rmdir(mnt / "o_user")
    os.mkdir(mnt / "o_user")
    seen["new dir stored"] = _xattrs(upper / "o_user")
    seen["ls o_user again"] = sorted(os.listdir(mnt / "o_user"))
    try:  # userxattr implies redirect_dir=nofollow: a merged directory is not renamed
        os.rename(mnt / "d", mnt / "d2")
        seen["rename d"] = "ok"
    except OSError as exc:
        seen["rename d"] = errno.errorcode[exc.errno or 0]
    return seen


@contextmanager
def _side(base: Path, kernel: bool, ns: str, opts: str) -> Iterator[tuple[Path, Path]]:
    top, bottom = _build(base, ns)
    upper, work, mnt = base / "upper", base / "work", base / "mnt"
    for d in (upper, work, mnt):
        d.mkdir()
    if kernel:
        with kernel_overlay([top, bottom], mnt, upper, work, opts=opts):
            yield mnt, upper
    else:
        extra = [opts] if opts else []
        with unionfs_mount([top, bottom], mnt, upper, work, extra_opts=extra):
            yield mnt, upper


def _compare(newdir: Callable[..., Path], ns: str, opts: str) -> None:
    results = {}
    for kernel in (True, False):
        with _side(newdir("k" if kernel else "u"), kernel, ns, opts) as (mnt, upper):
            results[kernel] = _observe(mnt, upper)
    assert results[False] == results[True]


def test_userxattr_uses_user_overlay_xattrs_only(newdir: Callable[..., Path]) -> None:
    _compare(newdir, "user", "userxattr")


def test_xwhiteouts_in_the_trusted_namespace(newdir: Callable[..., Path]) -> None:
    """Without userxattr; only the xwhiteout part. (``d/t``, empty and marked
    ``user.overlay.whiteout``, is a file to the kernel here and a whiteout to unionfs, which
    reads user.overlay.* markers without userxattr too: a difference the README states.)"""
    results = {}
    for kernel in (True, False):
        with _side(newdir("k" if kernel else "u"), kernel, "trusted", "") as (mnt, _upper):
            results[kernel] = {
                "ls d": sorted(set(os.listdir(mnt / "d")) - {"t"}),
                "d/f": (mnt / "d" / "f").exists(),
                "d/g": (mnt / "d" / "g").read_bytes(),
            }
    assert results[False] == results[True]
