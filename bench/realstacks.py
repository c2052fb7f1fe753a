"""The real workloads' stacks: a Debian root file system in image-like layers, a C project
and a git repository, built once into the stack cache and reused offline afterwards.

The one download: ``mmdebstrap`` (through Debian's archive, as apt does) makes a minbase
bookworm root whose apt lists and ``/var/cache/apt/archives`` already hold the packages of
``APT_PACKAGES``; installing them later needs no network. The second layer is that install,
made on a kernel overlay mount (so its whiteouts are the kernel's). Mounts nothing it does
not unmount; never times anything.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench import csource

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
APT_PACKAGES = ("build-essential", "git", "python3")
VERSION = 1  # bump when what is built here changes

APT_ENV = "DEBIAN_FRONTEND=noninteractive"
APT_INSTALL = (
    f"env {APT_ENV} apt-get install -y -q --no-download --no-install-recommends "
    "-o Dpkg::Use-Pty=0 " + " ".join(APT_PACKAGES)
)
C_MODULES = 160  # .c files the C build compiles
GIT_FILES = 3000  # files in the git repository's work tree
GIT_COMMITS = 25


def chroot_prefix(root: Path) -> str:
    """A shell prefix that runs a command chrooted into *root* with /proc and /dev there, in
    a private mount and pid namespace: the two mounts vanish with the command."""
    r = shlex.quote(str(root))
    inner = f'mount --rbind /dev {r}/dev && exec chroot {r} "$@"'
    return (
        f"unshare --mount --pid --fork --propagation private --mount-proc={r}/proc "
        f"-- /bin/sh -c {shlex.quote(inner)} chroot"
    )


def kinds(root: Path) -> dict[str, int]:
    """What ``find -printf %y`` shows below *root*: counts of f, d, l, c, ..."""
    out = subprocess.run(
        ["find", str(root), "-mindepth", "1", "-printf", "%y\\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    counts: dict[str, int] = {}
    for k in out:
        counts[k] = counts.get(k, 0) + 1
    return counts


def overlay(lowers: list[Path], mnt: Path, upper: Path | None = None,
            work: Path | None = None) -> None:  # fmt: skip
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None and work is not None:
        opts += f",upperdir={upper},workdir={work}"
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], check=True)


def umount(mnt: Path) -> None:
    if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def merged_kinds(lowers: list[Path], scratch: Path) -> dict[str, int]:
    """The merged view's counts, as kernel overlayfs shows *lowers* (read-only mount)."""
    if len(lowers) == 1:
        return kinds(lowers[0])
    mnt = scratch / "count-mnt"
    overlay(lowers, mnt)
    try:
        return kinds(mnt)
    finally:
        umount(mnt)
        mnt.rmdir()


def build_base(layer: Path) -> None:
    """mmdebstrap a minbase root into *layer*, its package cache filled for APT_PACKAGES."""
    if shutil.which("mmdebstrap") is None:
        raise SystemExit("bench: the real workloads need mmdebstrap: ./dev.sh bench")
    hook = (
        'chroot "$1" apt-get install --download-only -y -q --no-install-recommends '
        + " ".join(APT_PACKAGES)
    )
    subprocess.run(
        ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet",
         "--skip=cleanup/apt/lists,cleanup/apt/cache", f"--customize-hook={hook}",
         SUITE, str(layer), MIRROR],
        check=True,
    )  # fmt: skip


def build_installed(layer: Path, base: Path, scratch: Path) -> None:
    """*layer* = the upper of installing APT_PACKAGES offline on kernel overlayfs over *base*."""
    mnt, work = scratch / "install-mnt", scratch / "install-work"
    layer.mkdir(parents=True)
    work.mkdir(parents=True)
    overlay([base], mnt, layer, work)
    try:
        subprocess.run(f"{chroot_prefix(mnt)} {APT_INSTALL}", shell=True, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    finally:
        umount(mnt)
        shutil.rmtree(work, ignore_errors=True)
        mnt.rmdir()


def build_copy(layer: Path, lowers: list[Path], scratch: Path) -> None:
    """*layer* = a plain copy (``cp -a``) of the merged view of *lowers*."""
    mnt = scratch / "copy-mnt"
    overlay(lowers, mnt)
    try:
        subprocess.run(["cp", "-a", f"{mnt}/.", str(layer)], check=True)
    finally:
        umount(mnt)
        mnt.rmdir()


def build_csrc(layer: Path) -> None:
    """A C project in ``src/`` (C_MODULES .c files, a Makefile): what ``make -j2`` builds."""
    csource.write_project(layer / "src", C_MODULES, seed=VERSION)


def build_git(layer: Path) -> None:
    """A repository in ``repo/``: GIT_FILES files over GIT_COMMITS commits, all objects
    loose (no gc), so ``git gc`` has packing to do."""
    repo = layer / "repo"
    csource.write_project(repo, GIT_FILES, seed=VERSION + 1, with_makefile=False)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }  # fmt: skip

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), "-c", "gc.auto=0", *args], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "initial")
    for i in range(1, GIT_COMMITS):
        csource.touch_some(repo, i, share=0.02)
        git("add", "-A")
        git("commit", "-q", "-m", f"change {i}")
    git("config", "gc.auto", "0")  # nothing packs behind the timed commands' backs


# -- the stacks, by name: what StackCache.real builds into its temporary directory ----------

STACKS = ("debian-base", "debian", "debian-flat", "csrc", "git")


def build(name: str, tmp: Path, cache_dir: Path,
          layers_of: Callable[[str], list[Path]]) -> dict[str, object]:  # fmt: skip
    """Build stack *name* in *tmp* (renamed to its cache dir afterwards); its meta.json.
    *layers_of(NAME)* gives the layers of real stack NAME, built first if need be (the
    cache's business: this module never imports ``bench.stacks``)."""
    own = f"real-{name}-v{VERSION}/layers/0"  # the stack's own layer, relative to the cache
    layer = tmp / "layers" / "0"
    layer.parent.mkdir(parents=True, exist_ok=True)
    below: list[Path] = []
    if name == "debian-base":
        build_base(layer)
    elif name == "debian":
        below = layers_of("debian-base")
        build_installed(layer, below[0], tmp)
    elif name == "debian-flat":
        layer.mkdir()
        build_copy(layer, layers_of("debian"), tmp)
        # Without /dev's nodes: fuse-overlayfs mounts nodev, and cp -a then fails on the
        # dangling /dev/ptmx symlink (ENOENT preserving its permissions).
        for entry in (layer / "dev").iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    elif name == "csrc":
        below = layers_of("debian")
        build_csrc(layer)
    elif name == "git":
        build_git(layer)
    else:
        raise SystemExit(f"bench: unknown real stack {name!r} (known: {', '.join(STACKS)})")
    counts = merged_kinds([layer, *below], tmp)
    return {
        "depth": 1 + len(below),
        "layer_paths": [own, *(str(p.relative_to(cache_dir)) for p in below)],
        "files": counts.get("f", 0),
        "dirs": counts.get("d", 0),
        "whiteouts": 0,
        "kinds": counts,
    }
