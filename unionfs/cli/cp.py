"""``unionfs cp SRC DEST``: copy files between a container and the host, through the
container's mount (its runtime's while it runs, else mounted here for the copy).

One of SRC and DEST is ``C:PATH``. Paths in the container resolve inside its root
(``openat2`` with RESOLVE_IN_ROOT: its symlinks never lead out to the host's files); a
directory is copied whole, symlinks as symlinks, modes kept; a DEST directory receives
SRC under its own name, as ``podman cp``. As root; an ordinary user's running container
is mounted in its runtime's namespace, out of reach here (refused, one line).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
from collections.abc import Iterator

from unionfs.errors import UserError
from unionfs.runtime.state import ContainerDirs, default_home, describe
from unionfs.safepath import openat2

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cp", help="copy files between a container and the host",
                       description=__doc__)  # fmt: skip
    p.add_argument("source", metavar="SRC", help="C:PATH or a host path")
    p.add_argument("dest", metavar="DEST", help="C:PATH or a host path")


def _split(text: str) -> tuple[str | None, str]:
    """``C:PATH`` -> (C, PATH); a host path (``./a:b`` too) -> (None, path)."""
    name, colon, path = text.partition(":")
    if not colon or "/" in name or not name:
        return None, text
    return name, path or "/"


@contextlib.contextmanager
def _root(ref: str) -> Iterator[int]:
    """An fd of container *ref*'s merged root, mounted for as long as it is held."""
    from unionfs.cli.storecli import open_store
    from unionfs.containers import lifecycle

    home = default_home()
    dirs = ContainerDirs(home)
    state = dirs.find(ref)
    rootfs = dirs.paths(state.id).rootfs
    mounted_here = False
    if describe(state) in ("running", "stopping", "starting"):
        if os.geteuid() != 0 or not os.path.ismount(rootfs):
            raise UserError(f"container {state.name} runs in a user namespace of its own: "
                            f"stop it first, or use unionfs exec {state.name} tar")  # fmt: skip
    elif not os.path.ismount(rootfs):
        with open_store(argparse.Namespace(root=home)) as store:
            lifecycle.mount(store, state.id)
        mounted_here = True
    try:
        fd = os.open(rootfs, _DIR)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        if mounted_here:
            from unionfs.runtime import rootfs as roots

            roots.unmount(rootfs)


def _in(root: int, path: str, flags: int, mode: int = 0) -> int:
    return openat2(root, os.fsencode(path.lstrip("/") or "."), flags, mode, _IN_ROOT)


def _copy_entry(src_dir: int, name: str, dst_dir: int, dst_name: str) -> None:
    """*name* below *src_dir* to *dst_name* below *dst_dir*: files, dirs (whole), links."""
    st = os.lstat(name, dir_fd=src_dir)
    if stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dst_name, dir_fd=dst_dir)
        os.symlink(os.readlink(name, dir_fd=src_dir), dst_name, dir_fd=dst_dir)
    elif stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileExistsError):
            os.mkdir(dst_name, stat.S_IMODE(st.st_mode) | 0o700, dir_fd=dst_dir)
        sub = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=src_dir)
        into = os.open(dst_name, _DIR | os.O_NOFOLLOW, dir_fd=dst_dir)
        try:
            for entry in sorted(os.listdir(sub)):
                _copy_entry(sub, entry, into, entry)
            os.chmod(into, stat.S_IMODE(st.st_mode))
        finally:
            os.close(sub)
            os.close(into)
    elif stat.S_ISREG(st.st_mode):
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
        try:
            dst = os.open(dst_name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW |
                          os.O_CLOEXEC, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)  # fmt: skip
            try:
                while chunk := os.read(src, 1 << 20):
                    os.write(dst, chunk)
                os.fchmod(dst, stat.S_IMODE(st.st_mode))
            finally:
                os.close(dst)
        finally:
            os.close(src)
    else:
        raise UserError(f"cp: {name} is neither a file, a directory nor a symlink")


def copy(src_root: int, src: str, dst_root: int, dst: str) -> None:
    """SRC (below *src_root*) to DEST (below *dst_root*); each root an fd whose paths
    resolve inside it."""
    parent, name = os.path.split(src.rstrip("/") or "/")
    src_parent = _in(src_root, parent or "/", _DIR)
    try:
        if not name:
            name = "."
        os.lstat(name, dir_fd=src_parent)  # a missing SRC: FileNotFoundError, named below
        try:
            dest = _in(dst_root, dst, _DIR)
            into, target = dest, os.path.basename(os.path.normpath(src)) or "root"
        except NotADirectoryError:
            dest = None
        except FileNotFoundError:
            dest = None
        if dest is None:
            dparent, target = os.path.split(dst.rstrip("/"))
            into = _in(dst_root, dparent or "/", _DIR)
        try:
            _copy_entry(src_parent, name, into, target)
        finally:
            os.close(into)
    finally:
        os.close(src_parent)


def run(args: argparse.Namespace) -> int:
    (src_c, src), (dst_c, dst) = _split(args.source), _split(args.dest)
    if (src_c is None) == (dst_c is None):
        raise UserError("cp: give one side as CONTAINER:PATH (and the other a host path)", 2)
    host = os.open("/", _DIR)
    try:
        ref = src_c or dst_c
        assert ref is not None
        with _root(ref) as root:
            try:
                if src_c is not None:
                    copy(root, src, host, os.path.abspath(dst))
                else:
                    copy(host, os.path.abspath(src), root, dst)
            except FileNotFoundError as exc:
                raise UserError(f"cp: no such file or directory: {exc.filename or src}") from None
    finally:
        os.close(host)
    return 0
