"""Buffered reads after asynchronous O_DIRECT writes see the new data, as under kernel
overlayfs (issue 19.10; the shape of xfstests generic/451).

A writer rewrites a file again and again with io_submit(O_DIRECT), alternating two
patterns, and checks each round with a buffered read from a fresh descriptor, while two
threads keep reading the file through the page cache. The kernel's FUSE client drops the
written range before sending an asynchronous direct write and never after: a read answered
before the write was done used to leave the old pattern cached (unionfs and fuse-overlayfs
both, one round in a few hundred here). The unmounted rule is
tests/fuse/test_ops_direct_io.py; this shows the mount, and the kernel, agree.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from pathlib import Path

import pytest
from mountutil import tree
from writeutil import writable

BUF = 65536
ROUNDS = 40  # the default tier: a few seconds; the slow tier runs SOAK_ROUNDS
SOAK_ROUNDS = 1500

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
# x86_64 system call numbers (aarch64 uses the generic ones: 0, 1, 4, 2)
_IO_SETUP, _IO_DESTROY, _IO_GETEVENTS, _IO_SUBMIT = (
    (206, 207, 208, 209) if os.uname().machine == "x86_64" else (0, 1, 4, 2)
)
_IOCB_CMD_PWRITE = 1


class _Iocb(ctypes.Structure):
    _fields_ = (
        ("data", ctypes.c_uint64), ("key", ctypes.c_uint32), ("rw_flags", ctypes.c_int32),
        ("opcode", ctypes.c_uint16), ("reqprio", ctypes.c_int16), ("fildes", ctypes.c_uint32),
        ("buf", ctypes.c_uint64), ("nbytes", ctypes.c_uint64), ("offset", ctypes.c_int64),
        ("reserved2", ctypes.c_uint64), ("flags", ctypes.c_uint32), ("resfd", ctypes.c_uint32),
    )  # fmt: skip


class _Event(ctypes.Structure):
    _fields_ = (("data", ctypes.c_uint64), ("obj", ctypes.c_uint64),
                ("res", ctypes.c_int64), ("res2", ctypes.c_int64))  # fmt: skip


def _syscall(*args: object) -> int:
    result = int(_libc.syscall(*args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def aio_pwrite(fd: int, buf: mmap.mmap, offset: int) -> int:
    """One io_submit(IOCB_CMD_PWRITE) of *buf* at *offset*, waited for: bytes written."""
    ctx = ctypes.c_ulong(0)
    _syscall(_IO_SETUP, 1, ctypes.byref(ctx))
    try:
        cb = _Iocb(opcode=_IOCB_CMD_PWRITE, fildes=fd, nbytes=len(buf), offset=offset,
                   buf=ctypes.addressof(ctypes.c_char.from_buffer(buf)))  # fmt: skip
        cbs = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(cb))
        assert _syscall(_IO_SUBMIT, ctx, 1, cbs) == 1
        event = _Event()
        assert _syscall(_IO_GETEVENTS, ctx, 1, 1, ctypes.byref(event), None) == 1
        if event.res < 0:
            raise OSError(-event.res, os.strerror(-event.res))
        return int(event.res)
    finally:
        _syscall(_IO_DESTROY, ctx)


def aligned(byte: bytes) -> mmap.mmap:
    """A page-aligned buffer of BUF bytes *byte* (O_DIRECT wants aligned memory)."""
    buf = mmap.mmap(-1, BUF)
    buf.write(byte * BUF)
    return buf


def stale_rounds(path: Path, rounds: int) -> list[int]:
    """Rewrite *path* *rounds* times as the module says; the rounds whose buffered read
    showed the pattern of the round before."""
    patterns = [aligned(b"\x55"), aligned(b"\xaa")]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    os.pwrite(fd, patterns[0], 0)
    os.fsync(fd)
    os.close(fd)
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            rfd = os.open(path, os.O_RDONLY)
            os.pread(rfd, BUF, 0)
            os.close(rfd)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    stale = []
    try:
        for r in range(rounds):
            want = patterns[(r + 1) % 2]
            fd = os.open(path, os.O_RDWR | os.O_DIRECT)
            try:
                assert aio_pwrite(fd, want, 0) == BUF
            finally:
                os.close(fd)
            rfd = os.open(path, os.O_RDONLY)
            try:
                if os.pread(rfd, BUF, 0) != bytes(want):
                    stale.append(r)
            finally:
                os.close(rfd)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return stale


LAYERS = [tree({"d": {"lower": b"\x33" * BUF}})]


def run(tmp_path: Path, rounds: int) -> None:
    for kernel in (True, False):
        with writable(tmp_path, LAYERS, kernel=kernel) as m:
            for name in ("lower", "new"):  # copied up at the first write / upper only
                stale = stale_rounds(m.path(f"d/{name}"), rounds)
                who = "kernel" if kernel else "unionfs"
                assert stale == [], f"{who}: {name}: stale data after rounds {stale[:10]}"


def test_buffered_reads_see_async_direct_writes(tmp_path: Path) -> None:
    run(tmp_path, ROUNDS)


@pytest.mark.slow
def test_buffered_reads_see_async_direct_writes_soak(tmp_path: Path) -> None:
    run(tmp_path, SOAK_ROUNDS)
