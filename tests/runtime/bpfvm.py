"""A classic-BPF interpreter for seccomp programs, enough to run what ``seccompbpf`` emits:
the tests ask the program what it answers for a system call without loading it."""

from __future__ import annotations

import struct

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
ALLOW = 0x7FFF0000
ERRNO = 0x00050000


def errno(value: int) -> int:
    return ERRNO | value


def run(program: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64,
        args: tuple[int, ...] = (0, 0, 0, 0, 0, 0)) -> int:  # fmt: skip
    """What *program* returns for system call *nr* of *arch* with *args*."""
    data = struct.pack("<IIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:
            acc &= k
        elif code == 0x05:
            pc += k
        elif code in (0x15, 0x25, 0x35):
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k}[code]
            pc += jt if taken else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x} at {pc - 1}")
