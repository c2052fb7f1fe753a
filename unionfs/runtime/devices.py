"""Which devices a container may open or create: the rules, and the cgroup v2 form of them.

A container gets "deny all, then allow the standard set" (``default_rules``): the nodes of
its minimal /dev and the ptys. cgroup v1 takes the rules as ``devices.deny``/``allow``
lines (``cgroups``); cgroup v2 has no devices controller, only a BPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup (as runc and crun attach one):
``program`` builds it (pure), ``attach`` loads and attaches it with bpf(2). Rules are read
in order, the last that matches deciding, as runc's device filter reads them.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
from dataclasses import dataclass

# name, major, minor of the nodes bound into every container's /dev, then the others
STANDARD_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                  ("urandom", 1, 9), ("tty", 5, 0))  # fmt: skip
CONSOLE = (5, 1)
PTMX = (5, 2)
PTS_MAJOR = 136  # /dev/pts/N: 136-143 (Unix98 ptys)


@dataclass(frozen=True, slots=True)
class DeviceRule:
    """A device cgroup rule: *kind* a (all), c or b; None major/minor mean any."""

    allow: bool
    kind: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"


STANDARD = (
    *(DeviceRule(True, "c", major, minor, "rwm") for _name, major, minor in STANDARD_NODES),
    DeviceRule(True, "c", *CONSOLE, "rwm"),
    DeviceRule(True, "c", *PTMX, "rwm"),
    DeviceRule(True, "c", PTS_MAJOR, None, "rwm"),
)
ALLOW_ALL = (DeviceRule(True, "a"),)
# docker's: with CAP_MKNOD a container may create any node (it cannot open one: above)
MKNOD_ANY = (DeviceRule(True, "c", None, None, "m"), DeviceRule(True, "b", None, None, "m"))


def default_rules(mknod: bool = False) -> tuple[DeviceRule, ...]:
    """Deny all, allow the standard set; with CAP_MKNOD also creating (only) any node."""
    return (DeviceRule(False, "a"), *STANDARD, *(MKNOD_ANY if mknod else ()))


def v1_line(rule: DeviceRule) -> str:
    """The rule as a devices.allow/devices.deny line."""
    if rule.kind == "a":
        return "a"
    major = "*" if rule.major is None else str(rule.major)
    minor = "*" if rule.minor is None else str(rule.minor)
    return f"{rule.kind} {major}:{minor} {rule.access}"


# -- cgroup v2: the BPF device program ---------------------------------------------------
# struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }
DEV_BLOCK, DEV_CHAR = 1, 2
ACCESS = {"m": 1, "r": 2, "w": 4}
LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
AND32_K, RSH32_K = 0x54, 0x74  # BPF_ALU | op | BPF_K
MOV64_X, MOV64_K = 0xBF, 0xB7
JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Instructions that return the rule's verdict when it matches (r2 type, r3 access,
    r4 major, r5 minor) and fall through past themselves otherwise."""
    checks: list[tuple[int, int, int]] = []  # (code, dst, imm) that jump away on mismatch
    body: list[bytes] = []
    if rule.kind != "a":
        checks.append((JNE_K, 2, DEV_BLOCK if rule.kind == "b" else DEV_CHAR))
    wanted = sum(ACCESS[c] for c in set(rule.access))
    if rule.kind != "a" and wanted != 7:
        checks.append((-1, 0, wanted))  # access ⊆ rule's: (r3 & ~wanted) == 0
    if rule.kind != "a" and rule.major is not None:
        checks.append((JNE_K, 4, rule.major))
    if rule.kind != "a" and rule.minor is not None:
        checks.append((JNE_K, 5, rule.minor))
    tail = [_insn(MOV64_K, 0, imm=1 if rule.allow else 0), _insn(EXIT)]
    # each check is 1 instruction (3 for access); its jump skips to the end of this block
    sizes = [3 if code == -1 else 1 for code, _, _ in checks]
    for i, (code, dst, imm) in enumerate(checks):
        rest = sum(sizes[i + 1 :]) + len(tail)
        if code == -1:
            body.append(_insn(MOV64_X, 1, 3))
            body.append(_insn(AND32_K, 1, imm=~imm & 7))
            body.append(_insn(JNE_K, 1, off=rest, imm=0))
            continue
        body.append(_insn(code, dst, off=rest, imm=imm))
    return body + tail


def program(rules: tuple[DeviceRule, ...]) -> bytes:
    """The BPF_PROG_TYPE_CGROUP_DEVICE program for *rules* (last match wins; none: deny)."""
    head = [
        _insn(LDX_W, 2, 1, 0), _insn(AND32_K, 2, imm=0xFFFF),  # r2 = type
        _insn(LDX_W, 3, 1, 0), _insn(RSH32_K, 3, imm=16),  # r3 = access
        _insn(LDX_W, 4, 1, 4), _insn(LDX_W, 5, 1, 8),  # r4 = major, r5 = minor
    ]  # fmt: skip
    out = head
    for rule in reversed(rules):
        out += _rule_block(rule)
        if rule.kind == "a":  # matches everything: what comes before it never decides
            return b"".join(out)
    out += [_insn(MOV64_K, 0, imm=0), _insn(EXIT)]
    return b"".join(out)


SYS_BPF = 321  # x86_64
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, len(attr))
    result: int = _libc().syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(cmd), buf,
                                  ctypes.c_uint(len(attr)))  # fmt: skip
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf: {os.strerror(err)}")
    return result


def attach(cgroup_dir: str, code: bytes) -> None:
    """Load *code* as a device program and attach it to the cgroup v2 directory (the
    attachment keeps it alive; it goes with the cgroup). Needs CAP_BPF and CAP_SYS_ADMIN."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_), 0, 0, 0, 0, 0,
                       b"unionfs_dev", 0, 0).ljust(128, b"\0")  # fmt: skip
    prog_fd = _bpf(BPF_PROG_LOAD, attr)
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", dir_fd, prog_fd, BPF_CGROUP_DEVICE,
                                              BPF_F_ALLOW_MULTI, 0).ljust(128, b"\0"))  # fmt: skip
        finally:
            os.close(dir_fd)
    finally:
        os.close(prog_fd)
