"""The store's temporary files and directories, and reclaiming what killed writers left.

A temp is named ``.tmp-<pid>-<random>`` beside the place it will be renamed to, and has a
lock file ``<name>.lock`` that its writer holds (``flock``) from before the temp exists
until it is renamed or removed. A writer killed by any signal releases its lock with its
last descriptor; ``reclaim``, run under the store lock, removes the temps whose lock it can
take, and those whose lock file is gone. A live writer's temp is never removed, whatever
pid namespace either side is in: after taking its lock the writer checks that its lock
file is still on disk (a reclaim in between removed it: it starts over under a new name).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import typing
from collections.abc import Callable, Iterator

PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
REMOVING = ".rm-"  # a layer being removed: only ever made and removed under the store lock
_ExcInfo = tuple[type[BaseException], BaseException, object]


def _new_lock(parent: str) -> tuple[str, int]:
    """(temp path, descriptor of its lock file, locked and still linked)."""
    while True:
        path = os.path.join(parent, f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
        fd = os.open(path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return path, fd
        os.close(fd)  # reclaimed between its creation and our lock: take another name


def _release(path: str, fd: int) -> None:
    """Remove what is left of temp *path*, then its lock file, then let the lock go."""
    try:
        if os.path.lexists(path):
            remove_tree(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + LOCK_SUFFIX)
        os.close(fd)


@contextlib.contextmanager
def temp_dir(parent: str, mode: int = 0o755) -> Iterator[str]:
    """A new directory in *parent*, locked as ours; whatever of it was not renamed away
    by the end of the block is removed."""
    path, fd = _new_lock(parent)
    try:
        os.mkdir(path, mode)
        yield path
    finally:
        _release(path, fd)


@contextlib.contextmanager
def temp_file(parent: str) -> Iterator[tuple[str, typing.BinaryIO]]:
    """A new file in *parent* open for writing, locked as ours; removed at the end of the
    block unless it was renamed away."""
    path, fd = _new_lock(parent)
    try:
        with open(path, "xb") as f:
            yield path, f
    finally:
        _release(path, fd)


def reclaim(directory: str, warn: Callable[[str], None]) -> list[str]:
    """Remove the temps in *directory* that no live process holds (store lock held);
    the names removed. One that cannot be removed is a warning, not a failure of the
    command that found it."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    gone = []
    for name in sorted(names):
        path = os.path.join(directory, name)
        try:
            if not _reclaim_one(name, path):
                continue
        except OSError as exc:
            warn(f"cannot remove {path}, left by a killed command: {exc.strerror}")
            continue
        gone.append(name)
    return gone


def _reclaim_one(name: str, path: str) -> bool:
    if name.startswith(REMOVING):
        remove_tree(path)
        return True
    if name.startswith(PREFIX) and name.endswith(LOCK_SUFFIX):
        return _reclaim_locked(path.removesuffix(LOCK_SUFFIX))
    if name.startswith(PREFIX):
        # A temp is made after its lock file and outlives it only when its writer or a
        # reclaim was killed between removing one and the other: nobody holds it.
        if os.path.lexists(path + LOCK_SUFFIX):
            return False  # decided by its lock file, listed on its own
        remove_tree(path)
        return True
    return False


def _reclaim_locked(path: str) -> bool:
    """Remove temp *path* and its lock file if its lock can be taken now."""
    try:
        fd = os.open(path + LOCK_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # its writer finished meanwhile
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer
        if os.fstat(fd).st_nlink == 0:
            return False  # its writer finished meanwhile
        if os.path.lexists(path):
            remove_tree(path)
        os.unlink(path + LOCK_SUFFIX)
        return True
    finally:
        os.close(fd)


def remove_tree(path: str) -> None:
    """Remove *path* (a file, or a tree that may hold read-only directories: extracted
    layers do), never following a symlink."""
    if not os.path.isdir(path) or os.path.islink(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return

    def onerror(_fn: object, p: str, exc: _ExcInfo) -> None:
        if isinstance(exc[1], FileNotFoundError):
            return
        # Open up the directory that refused, then try again once.
        parent = os.path.dirname(p)
        with contextlib.suppress(OSError):
            os.chmod(parent, 0o700)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, 0o700)
            shutil.rmtree(p, onerror=_raise_unless_gone)
        else:
            os.unlink(p)

    shutil.rmtree(path, onerror=onerror)


def _raise_unless_gone(_fn: object, _p: str, exc: _ExcInfo) -> None:
    if not (isinstance(exc[1], OSError) and exc[1].errno == errno.ENOENT):
        raise exc[1]
