"""What the rootless tests run *as the test user* (``python userside.py COMMAND BASE``).

Not a test module: the conftest runs it with ``runuser`` in a private mount namespace that
has a usable /dev/fuse. It prints one JSON document (or fails with a traceback).

- ``usermount BASE``: mount ``BASE/l0:BASE/l1`` (built by root, every marker form) as an
  ordinary user (libfuse goes through fusermount3), change it, report the merged view, the
  upper's markers and the mount's owner, and unmount.
- ``differential BASE``: run inside ``unshare -r -m`` (the user is root in a user
  namespace, as for rootless podman): kernel overlayfs with ``userxattr`` and unionfs over
  copies of one stack, the same write operations on both, results and trees compared.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from mountutil import Dir, File, Symlink, Whiteout, build_stack, kernel_overlay, unionfs_mount
from patience import wait_until
from treecmp import diff_trees, drop_unstatable, snapshot
from write_pairs import (
    op_chmod,
    op_create,
    op_link,
    op_listdir,
    op_mkdir,
    op_rename,
    op_rmdir,
    op_setxattr,
    op_stat,
    op_symlink,
    op_truncate,
    op_unlink,
    op_write,
    step,
)


def _markers(upper: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, upper)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            if stat.S_ISCHR(st.st_mode):
                kind = f"chr {os.major(st.st_rdev)}/{os.minor(st.st_rdev)}"
            xattrs = sorted(os.listxattr(path, follow_symlinks=False))
            found[rel] = [kind, xattrs, st.st_uid]
    return found


def usermount(base: Path) -> dict[str, object]:
    upper, work, mnt = base / "upper", base / "work", base / "mnt"
    for d in (upper, work, mnt):
        d.mkdir()
    opts = f"lowerdir={base / 'l0'}:{base / 'l1'},upperdir={upper},workdir={work}"
    unionfs = [sys.executable, "-m", "unionfs"]
    subprocess.run([*unionfs, "mount", "-o", opts, str(mnt)], check=True)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            line = next(ln for ln in f if f" {mnt} " in ln)
        before = sorted(os.listdir(mnt))
        opaque = {d: sorted(os.listdir(mnt / d)) for d in ("o_user", "o_trusted", "o_wh")}
        os.unlink(mnt / "a")
        with open(mnt / "c", "ab") as f:
            f.write(b"+")
        copied = (mnt / "c").read_text()
        work_st = os.lstat(work / "work")
        work_mode = [stat.filemode(work_st.st_mode), os.listxattr(work / "work")]
        subprocess.run(["rm", "-r", str(mnt / "d")], check=True)
        (mnt / "d").mkdir()
        (mnt / "d" / "new").write_bytes(b"mine")
        after = sorted(os.listdir(mnt))
        inside = sorted(os.listdir(mnt / "d"))
        owner = os.stat(mnt / "d" / "new").st_uid
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
    wait_until(lambda: not os.path.ismount(mnt), 30)
    return {
        "mountinfo": line.split(" - ")[1].split(),
        "before": before,
        "opaque": opaque,
        "after": after,
        "inside": inside,
        "copied": copied,
        "work": work_mode,
        "owner": owner,
        "markers": _markers(upper),
        "still_mounted": os.path.ismount(mnt),
    }


def _stack(whiteout_form: str) -> list[Dir]:
    top = Dir({
        b"a": File(b"top a"),
        b"gone": Whiteout(whiteout_form),
        b"od": Dir({b"only": File(b"o")}, opaque="user"),
        b"d": Dir({b"t": File(b"t")}),
    })  # fmt: skip
    bottom = Dir({
        b"a": File(b"bottom a"),
        b"gone": File(b"hidden"),
        b"od": Dir({b"hidden": File(b"h")}),
        b"d": Dir({b"b": File(b"b", mode=0o600), b"sub": Dir({b"x": File(b"x" * 5000)})}),
        b"l": Symlink(b"a"),
        b"big": File(b"z" * 70000),
    })  # fmt: skip
    return [top, bottom]


OPS = [
    ("create new", op_create(b"new", 0o640, 0, b"fresh")),
    ("write lower", op_write(b"d/b", 3, b"XY", False)),
    ("append big", op_write(b"big", 0, b"tail", True)),
    ("truncate", op_truncate(b"d/sub/x", 10, False)),
    ("unlink lower", op_unlink(b"a")),
    ("unlink again", op_unlink(b"a")),
    ("rmdir nonempty", op_rmdir(b"d/sub")),
    ("unlink in sub", op_unlink(b"d/sub/x")),
    ("rmdir sub", op_rmdir(b"d/sub")),
    ("mkdir over removed", op_mkdir(b"d/sub", 0o750)),
    ("list new sub", op_listdir(b"d/sub")),
    ("rename file", op_rename(b"d/t", b"od/t2", 0)),
    ("list opaque", op_listdir(b"od")),
    ("chmod", op_chmod(b"d/b", 0o604)),
    ("symlink", op_symlink(b"d/s", b"../new")),
    ("hard link", op_link(b"new", b"d/new2")),
    ("xattr", op_setxattr(b"d", b"user.k", b"v")),
    ("stat whiteout", op_stat(b"gone")),
    ("create over whiteout", op_create(b"gone", 0o600, 0, b"back")),
    ("list root", op_listdir(b"")),
]


def differential(base: Path) -> dict[str, object]:
    for side in ("k", "u"):
        for part in ("", "/upper", "/work", "/mnt"):
            (base / (side + part)).mkdir()
    k_lowers = build_stack(base / "k", _stack("chr"), kernel=False)
    u_lowers = build_stack(base / "u", _stack("wh"), kernel=False)
    results = []
    with kernel_overlay(k_lowers, base / "k/mnt", base / "k/upper", base / "k/work",
                        "userxattr"), \
         unionfs_mount(u_lowers, base / "u/mnt", base / "u/upper", base / "u/work"):  # fmt: skip
        kroot = os.open(base / "k/mnt", os.O_PATH | os.O_DIRECTORY)
        uroot = os.open(base / "u/mnt", os.O_PATH | os.O_DIRECTORY)
        for what, op in OPS:
            kernel, union = step(op, kroot), step(op, uroot)
            assert kernel == union, f"{what}: kernel={kernel!r} unionfs={union!r}"
            results.append([what, repr(kernel)])
        os.close(kroot)
        os.close(uroot)
        differences = diff_trees(
            drop_unstatable(snapshot(base / "k/mnt")), drop_unstatable(snapshot(base / "u/mnt"))
        )
        assert not differences, "\n".join(differences)
    return {"ops": results, "uid_map": Path("/proc/self/uid_map").read_text().split()}


def main() -> None:
    command, base = sys.argv[1], Path(sys.argv[2])
    result = {"usermount": usermount, "differential": differential}[command](base)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
