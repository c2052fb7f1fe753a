"""The Linux calls Python 3.11 does not offer, through ctypes: unshare, setns, mount,
umount2, pivot_root, sethostname/setdomainname, prctl, capset, seccomp; and loopback up.

Thin wrappers only: each raises ``OSError`` with the real errno, none decides anything.
Call them only in a single-threaded process (``unshare(CLONE_NEWUSER)`` and
``setns`` into a mount namespace fail with EINVAL when the process has threads).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import socket
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# spec name -> (clone flag, name under /proc/PID/ns)
KINDS = {
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "mount": (CLONE_NEWNS, "mnt"),
    "network": (CLONE_NEWNET, "net"),
    "pid": (CLONE_NEWPID, "pid"),
    "user": (CLONE_NEWUSER, "user"),
    "uts": (CLONE_NEWUTS, "uts"),
}

MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64
SYS_CAPSET = 126
SYS_SECCOMP = 317  # x86_64
SECCOMP_SET_MODE_FILTER = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_CHILD_SUBREAPER = 36
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str, path: str | None = None) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def unshare(flags: int) -> None:
    _check(_libc().unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    result = _libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                           enc(data) if data else None)  # fmt: skip
    _check(result, f"mount {fstype or source or ''} on {target}".replace("  ", " "), target)


def umount2(target: str, flags: int) -> None:
    _check(_libc().umount2(os.fsencode(target), ctypes.c_int(flags)), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    result = _libc().syscall(ctypes.c_long(SYS_PIVOT_ROOT), os.fsencode(new_root),
                             os.fsencode(put_old))  # fmt: skip
    _check(result, "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc().sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc().setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    libc = _libc()
    result: int = libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                             ctypes.c_ulong(0), ctypes.c_ulong(0))  # fmt: skip
    return _check(result, f"prctl({option})")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the three capability sets of this thread (bit masks, 64 bits each)."""
    header = struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    data = struct.pack(
        "IIIIII",
        effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF,
        effective >> 32, permitted >> 32, inheritable >> 32,
    )  # fmt: skip
    hbuf = ctypes.create_string_buffer(header, len(header))
    dbuf = ctypes.create_string_buffer(data, len(data))
    _check(_libc().syscall(ctypes.c_long(SYS_CAPSET), hbuf, dbuf), "capset")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_filter(program: bytes, flags: int) -> None:
    """Install the BPF *program* (``struct sock_filter`` array) as this thread's seccomp
    filter: needs no_new_privs, or CAP_SYS_ADMIN in the process's user namespace."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    result = _libc().syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                             ctypes.c_uint(flags), ctypes.byref(prog))  # fmt: skip
    _check(result, "seccomp")


def loopback_up() -> None:
    """``ip link set lo up``: SIOCGIFFLAGS, set IFF_UP, SIOCSIFFLAGS (struct ifreq)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
