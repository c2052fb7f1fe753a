"""The workloads: what is timed, as shell commands run by native tools (find, stat, cat,
dd, tar, mv), so the client's cost is the same native code on every system.

A workload names the stack it needs, an untimed setup, the timed command and whether a
second pass on the same mount means anything (read-only workloads: the "warm" pass).
Placeholders (``Runner.context``): ``{mnt}`` the mount point, ``{tar}`` the source tarball,
``{src}`` the source tree as a plain dir, ``{n}`` files to create, ``{links}`` names of one
file, ``{mib}`` the big file's MiB, ``{fsops}`` bench/fsops.py, ``{chroot}`` a prefix running
a command chrooted into the mount, ``{apt}`` the offline install, ``{rootfs}`` a plain copy of
the installed Debian root. Must not mount or time anything.
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
    stack: str  # "source" (the small-file tree), "big" (one big lower file), "real:NAME"
    command: str = ""  # timed; empty for mount-only workloads
    setup: str = ""  # untimed, on the fresh mount, before the timed pass
    repeatable: bool = False  # a second pass on the same mount is timed as "warm"
    sweep: bool = False  # measured at every layer count of --layers, not only at 1
    deep: bool = False  # also measured at the --deep-layers counts (100, 500 in --full)
    mount_only: bool = False  # the time measured is the mount itself
    real: bool = False  # a real workload: opt-in (--real or by name)
    modifies: bool | None = None  # writes to the mount; default: not repeatable
    probe: Callable[[Path], str] | None = None  # untimed, after the passes: a note

    @property
    def writes(self) -> bool:
        if self.modifies is not None:
            return self.modifies
        return not (self.repeatable or self.mount_only)

def rename_probe(mnt: Path) -> str:
    """What rename(2) of a lower directory answers (overlayfs without redirect_dir: EXDEV)."""
    try:
        os.rename(mnt / "renameme2", mnt / "renamed2")
    except OSError as exc:
        return f"rename(2): {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    return "rename(2): ok"


_CREATE = "cd {mnt}/many && seq -f 'f%05.0f' {n} | xargs touch"
_LINKS = "mkdir {mnt}/ln && echo x > {mnt}/ln/f"

WORKLOADS: list[Workload] = [
    Workload("stat-all", "stat every file", "source",
             "find {mnt} -type f -print0 | xargs -0 stat > /dev/null",
             repeatable=True, sweep=True, deep=True),
    Workload("lstat-all", "lstat every entry from find itself (no stat(1) cost)", "source",
             "find {mnt} -type f -printf '%s\\n' > /dev/null", repeatable=True, sweep=True),
    Workload("mount", "start to first request served (stack already indexed)", "source",
             mount_only=True, sweep=True, deep=True),
    Workload("readdir-all", "readdir every directory (find)", "source",
             "find {mnt} > /dev/null", repeatable=True, sweep=True),
    Workload("read-all", "read every small file", "source",
             "find {mnt} -type f -print0 | xargs -0 cat > /dev/null", repeatable=True,
             sweep=True),
    Workload("seq-read", "sequential read of the big lower file", "big",
             "dd if={mnt}/big.bin of=/dev/null bs=1M status=none", repeatable=True),
    Workload("seq-write", "sequential write of a new big file (no fsync)", "big",
             "dd if=/dev/zero of={mnt}/new.bin bs=1M count={mib} status=none"),
    Workload("seq-write-fsync", "sequential write of a new big file, fsync at the end",
             "big", "dd if=/dev/zero of={mnt}/new.bin bs=1M count={mib} conv=fsync status=none"),
    Workload("copy-up", "append 1 byte to the big lower file (copy-up)", "big",
             "printf x >> {mnt}/big.bin"),
    Workload("chmod-big", "chmod of the big lower file", "big", "chmod 600 {mnt}/big.bin"),
    Workload("create-files", "create {n} empty files", "source", _CREATE,
             setup="mkdir {mnt}/many", sweep=True),
    Workload("delete-files", "rm -rf {n} files created on the mount", "source",
             "rm -rf {mnt}/many", setup="mkdir {mnt}/many && " + _CREATE, sweep=True),
    Workload("rm-lower", "rm -rf the whole lower tree (whiteouts)", "source",
             "find {mnt} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +", sweep=True),
    Workload("tar-x", "tar x of the source tree into the mount", "source",
             "tar -xf {tar} -C {mnt}/x", setup="mkdir {mnt}/x", sweep=True),
    Workload("cp-a", "cp -a of the source tree (a plain dir) into the mount", "source",
             "cp -a {src} {mnt}/copy", sweep=True),
    Workload("small-writes", "dpkg-like writes: 2 x {n} files of ~2.5 KB via .dpkg-new, "
             "renamed over, .dpkg-tmp links (no fsync)", "source",
             "{fsops} dpkg {mnt}/dpkg {n}", sweep=True),
    Workload("link", "link(): {links} names of one file", "source",
             "{fsops} link {mnt}/ln/f {links}", setup=_LINKS, sweep=True),
    Workload("unlink", "unlink(): {links} names of one file", "source",
             "{fsops} unlink {mnt}/ln {links}",
             setup=_LINKS + " && {fsops} link {mnt}/ln/f {links}", sweep=True),
    Workload("mv-lower-dir", "mv of a lower dir holding the rename files", "source",
             "mv {mnt}/renameme {mnt}/renamed", probe=rename_probe),
    # The real workloads (opt-in): a Debian root (bench/realstacks.py), offline.
    Workload("apt-install", "chroot apt-get install build-essential git python3, offline "
             "from the root's package cache", "real:debian-base", "{chroot} {apt}", real=True),
    Workload("cp-rootfs", "cp -a of a Debian root with those packages into the mount",
             "real:debian-base", "cp -a {rootfs} {mnt}/rootfs", real=True),
    Workload("tar-c", "tar c of the merged Debian root (2 layers), to a pipe",
             "real:debian", "tar -C {mnt} -cf - . | cat > /dev/null", repeatable=True,
             real=True),
    Workload("c-build", "make -j2 of a C project in a chroot (compiler and headers on the "
             "mount too)", "real:csrc", "{chroot} make -C /src -j2 -s", real=True),
    Workload("git-status", "git status of a repository in a lower layer", "real:git",
             "git -C {mnt}/repo status --porcelain > /dev/null", repeatable=True,
             modifies=True, real=True),
    Workload("git-gc", "git gc of that repository (packs its loose objects)", "real:git",
             "git -C {mnt}/repo gc -q", real=True),
]  # fmt: skip


def by_name(names: list[str]) -> list[Workload]:
    known = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"bench: unknown workload {unknown[0]!r} (known: {', '.join(known)})")
    return [known[n] for n in names]
