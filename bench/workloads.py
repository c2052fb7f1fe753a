"""The workloads: what is timed, as shell commands run by native tools (find, stat, cat,
dd, tar, mv), so the client's cost is the same native code on every system.

A workload names the stack it needs, an untimed setup, the timed command and whether a
second pass on the same mount means anything (read-only workloads: the "warm" pass).
Placeholders: ``{mnt}`` the mount point, ``{tar}`` the source tarball, ``{n}`` the number
of files to create, ``{mib}`` the big file's size in MiB. Must not mount or time anything.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    title: str
    stack: str  # "source" (the small-file tree) or "big" (one big lower file)
    command: str = ""  # timed; empty for mount-only workloads
    setup: str = ""  # untimed, on the fresh mount, before the timed pass
    repeatable: bool = False  # read-only: a second pass on the same mount is timed as "warm"
    sweep: bool = False  # measured at every layer count of --layers, not only at 1
    mount_only: bool = False  # the time measured is the mount itself
    probe: Callable[[Path], str] | None = None  # untimed, after the passes: a note

    @property
    def writes(self) -> bool:
        return not (self.repeatable or self.mount_only)


def rename_probe(mnt: Path) -> str:
    """What rename(2) of a lower directory answers (overlayfs without redirect_dir: EXDEV)."""
    try:
        os.rename(mnt / "renameme2", mnt / "renamed2")
    except OSError as exc:
        return f"rename(2): {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    return "rename(2): ok"


_CREATE = "cd {mnt}/many && seq -f 'f%05.0f' {n} | xargs touch"

WORKLOADS: list[Workload] = [
    Workload("stat-all", "stat every file", "source",
             "find {mnt} -type f -print0 | xargs -0 stat > /dev/null",
             repeatable=True, sweep=True),
    Workload("lstat-all", "lstat every entry from find itself (no stat(1) cost)", "source",
             "find {mnt} -type f -printf '%s\\n' > /dev/null", repeatable=True, sweep=True),
    Workload("mount", "mount until live", "source", mount_only=True, sweep=True),
    Workload("readdir-all", "readdir every directory (find)", "source",
             "find {mnt} > /dev/null", repeatable=True),
    Workload("read-all", "read every small file", "source",
             "find {mnt} -type f -print0 | xargs -0 cat > /dev/null", repeatable=True),
    Workload("seq-read", "sequential read of the big lower file", "big",
             "dd if={mnt}/big.bin of=/dev/null bs=1M status=none", repeatable=True),
    Workload("seq-write", "sequential write of a new big file (no fsync)", "big",
             "dd if=/dev/zero of={mnt}/new.bin bs=1M count={mib} status=none"),
    Workload("copy-up", "append 1 byte to the big lower file (copy-up)", "big",
             "printf x >> {mnt}/big.bin"),
    Workload("chmod-big", "chmod of the big lower file", "big", "chmod 600 {mnt}/big.bin"),
    Workload("create-files", "create {n} empty files", "source", _CREATE,
             setup="mkdir {mnt}/many"),
    Workload("delete-files", "rm -rf {n} files created on the mount", "source",
             "rm -rf {mnt}/many", setup="mkdir {mnt}/many && " + _CREATE),
    Workload("rm-lower", "rm -rf the whole lower tree (whiteouts)", "source",
             "find {mnt} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +"),
    Workload("tar-x", "tar x of the source tree into the mount", "source",
             "tar -xf {tar} -C {mnt}/x", setup="mkdir {mnt}/x"),
    Workload("mv-lower-dir", "mv of a lower dir holding the rename files", "source",
             "mv {mnt}/renameme {mnt}/renamed", probe=rename_probe),
]  # fmt: skip


def by_name(names: list[str]) -> list[Workload]:
    known = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"bench: unknown workload {unknown[0]!r} (known: {', '.join(known)})")
    return [known[n] for n in names]
