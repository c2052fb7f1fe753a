"""File handles against kernel overlayfs with its defaults (nfs_export=off): no handle is
handed out (name_to_handle_at fails with EOPNOTSUPP), so none can go stale; a handle for
fanotify (AT_HANDLE_FID), which is never decoded, is given on both."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from pathlib import Path

from mountutil import kernel_overlay, unionfs_mount

AT_HANDLE_FID = 0x200
_libc = ctypes.CDLL(None, use_errno=True)


class FileHandle(ctypes.Structure):
    _fields_ = (("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128))  # fmt: skip


def handle_errno(path: Path, flags: int = 0) -> int:
    """0 if name_to_handle_at gives a handle of *path*, else its errno."""
    handle = FileHandle(128, 0)
    mount_id = ctypes.c_int()
    done = _libc.name_to_handle_at(-100, os.fsencode(path), ctypes.byref(handle),
                                   ctypes.byref(mount_id), flags)  # fmt: skip
    return 0 if done == 0 else ctypes.get_errno()


def _observe(base: Path, mount: Callable[..., object]) -> dict[str, tuple[int, int]]:
    lower, lower2, upper, work, mnt = (base / n for n in ("l", "l2", "up", "work", "m"))
    for d in (lower / "d", lower2, upper, work, mnt):
        d.mkdir(parents=True)
    (lower / "low").write_bytes(b"l")
    with mount([lower, lower2], mnt, upper, work):  # type: ignore[attr-defined]
        (mnt / "new").write_bytes(b"n")
        with open(mnt / "low", "ab") as f:  # copied up
            f.write(b"+")
        return {name: (handle_errno(mnt / name), handle_errno(mnt / name, AT_HANDLE_FID))
                for name in ("", "d", "low", "new")}  # fmt: skip


def test_no_file_handles_as_on_kernel_overlayfs_without_nfs_export(
    newdir: Callable[..., Path],
) -> None:
    kernel = _observe(newdir("k"), kernel_overlay)
    ours = _observe(newdir("u"), unionfs_mount)
    assert set(kernel.values()) == {(errno.EOPNOTSUPP, 0)}  # no handle; a fid
    assert ours == kernel
