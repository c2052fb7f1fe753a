"""What a zygote's worker shows ``ps``: the caller's command line, environment and name.

A forked worker would otherwise show the zygote's ``python -m unionfs.zygote.server`` for
the whole life of the mount it serves. ``prctl(PR_SET_MM, PR_SET_MM_MAP)`` (which needs
no capability unless the executable changes) points the kernel's argument and environment
areas at copies of the caller's; ``PR_SET_NAME`` sets the short name. Nothing else here.
"""

from __future__ import annotations

import ctypes
import os

_PR_SET_NAME = 15
_PR_SET_MM = 35
_PR_SET_MM_MAP = 14
_NO_EXE_FD = 0xFFFFFFFF  # keep /proc/PID/exe: changing it is what needs a capability
_FIELDS = ("start_code", "end_code", "start_data", "end_data", "start_brk", "brk",
           "start_stack", "arg_start", "arg_end", "env_start", "env_end", "auxv")  # fmt: skip
# /proc/self/stat field numbers (1-based, as proc(5) counts them)
_STAT = {"start_code": 26, "end_code": 27, "start_stack": 28, "start_data": 45,
         "end_data": 46, "start_brk": 47, "arg_start": 48, "arg_end": 49, "env_start": 50,
         "env_end": 51}  # fmt: skip


class _Map(ctypes.Structure):
    """``struct prctl_mm_map`` (linux/prctl.h)."""

    _fields_ = [*((name, ctypes.c_uint64) for name in _FIELDS),
                ("auxv_size", ctypes.c_uint32), ("exe_fd", ctypes.c_uint32)]  # fmt: skip


_libc = ctypes.CDLL(None, use_errno=True)
_libc.sbrk.restype = ctypes.c_void_p
_worn: list[ctypes.Array[ctypes.c_char]] = []  # the areas /proc/PID/cmdline reads: kept alive


def own() -> tuple[bytes, bytes, bytes]:
    """This process's command line, environment (NUL-terminated strings) and name."""
    out = []
    for name in ("cmdline", "environ", "comm"):
        with open(f"/proc/self/{name}", "rb") as f:
            out.append(f.read())
    return out[0], out[1], out[2].rstrip(b"\n")


def wear(cmdline: bytes, environ: bytes, comm: bytes) -> None:
    """Show *cmdline*, *environ* and *comm* as this process's; OSError when the kernel
    refuses (no CONFIG_CHECKPOINT_RESTORE, a seccomp filter)."""
    if not cmdline.endswith(b"\0") or (environ and not environ.endswith(b"\0")):
        raise ValueError("the areas must end with a NUL")
    args = ctypes.create_string_buffer(cmdline, len(cmdline))
    env = ctypes.create_string_buffer(environ or b"\0", len(environ or b"\0"))
    with open("/proc/self/stat", "rb") as f:
        stat = f.read().rpartition(b")")[2].split()  # stat[0] is field 3
    values = {name: int(stat[n - 3]) for name, n in _STAT.items()}
    values.update(arg_start=ctypes.addressof(args), arg_end=ctypes.addressof(args) + len(args),
                  env_start=ctypes.addressof(env), env_end=ctypes.addressof(env) + len(env),
                  brk=_libc.sbrk(0) or 0, auxv=0)  # fmt: skip
    mm = _Map(**values, auxv_size=0, exe_fd=_NO_EXE_FD)
    if _libc.prctl(_PR_SET_MM, _PR_SET_MM_MAP, ctypes.byref(mm), ctypes.sizeof(mm), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_MM_MAP): {os.strerror(err)}")
    _worn[:] = [args, env]
    name = ctypes.create_string_buffer(comm[:15], 16)
    if _libc.prctl(_PR_SET_NAME, name, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NAME): {os.strerror(err)}")
