"""A ``seccomp.Filter`` -> the classic BPF program that seccomp(2) runs on every system call.

Our own compiler rather than libseccomp: the plan then carries the finished program as bytes
(the container's process only hands them to the kernel, after its root has become the
image's, where no C library of ours is), and the program is testable bit by bit without
privileges. The program checks ``seccomp_data.arch`` first (an architecture the filter does
not name, and x32 numbers, get ENOSYS: no syscall number of another ABI slips through), then
the number against each syscall with rules, in a linear chain (the kernel caches the allowed
ones that do not look at arguments, since 5.11). For one syscall, rules that compare
arguments are tried first, the most restrictive action first; then an unconditional rule;
else the default. Numbers come from ``data/syscalls-ARCH.txt``; unknown names are skipped,
as runc and libseccomp skip them. Pure.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import struct
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.runtime.seccomp import ENOSYS, ArgCmp, Filter, Rule

AUDIT_ARCH = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X86": 0x40000003}
TABLES = {"SCMP_ARCH_X86_64": "syscalls-x86_64.txt", "SCMP_ARCH_X86": "syscalls-i386.txt"}
WIDE = {"SCMP_ARCH_X86_64": True, "SCMP_ARCH_X86": False}  # 64-bit argument registers
X32_BIT = 0x40000000  # x32 syscalls: AUDIT_ARCH_X86_64 with this bit in the number
RETURN = {
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}  # fmt: skip
PRECEDENCE = tuple(RETURN)  # most restrictive first, as the kernel ranks filter results
# classic BPF opcodes
LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ, JGT, JGE = 0x15, 0x25, 0x35  # BPF_JMP | op | BPF_K
JA = 0x05
AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
RET = 0x06
NR, ARCH, ARGS = 0, 4, 16  # offsets in struct seccomp_data
MAX_INSNS = 4096


@functools.cache
def table(arch: str) -> dict[str, int]:
    """System call name -> number for *arch* (package data)."""
    if arch not in TABLES:
        raise UserError(f"seccomp: no system call table for {arch}: unionfs knows "
                        f"{', '.join(TABLES)} (--security-opt seccomp=unconfined runs "
                        "without a filter)")  # fmt: skip
    text = importlib.resources.files("unionfs.runtime").joinpath(f"data/{TABLES[arch]}")
    found = {}
    for line in text.read_text(encoding="ascii").splitlines():
        if line and not line.startswith("#"):
            number, name = line.split()
            found[name] = int(number)
    return found


Target = int | str  # an instruction's jump: a relative count, or a label


@dataclass(slots=True)
class _Asm:
    """Instructions with symbolic jumps; ``label`` marks the next instruction."""

    insns: list[tuple[int, Target, Target, Target]]
    labels: dict[str, int]
    counter: itertools.count[int]

    def emit(self, code: int, k: int, jt: Target = 0, jf: Target = 0) -> None:
        self.insns.append((code, jt, jf, k & 0xFFFFFFFF))

    def jump(self, label: str) -> None:
        """An unconditional jump (32-bit offset: any distance)."""
        self.insns.append((JA, 0, 0, label))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def fresh(self, what: str) -> str:
        return f"{what}{next(self.counter)}"

    def ret(self, action: str, errno: int) -> None:
        data = errno & 0xFFFF if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE") else 0
        self.emit(RET, RETURN[action] | data)

    def assemble(self) -> bytes:
        out = []
        for i, (code, jt, jf, k) in enumerate(self.insns):
            steps = [t if isinstance(t, int) else self.labels[t] - i - 1 for t in (jt, jf, k)]
            if code == JA:
                out.append(struct.pack("<HBBI", code, 0, 0, steps[2]))
                continue
            if not all(0 <= step <= 255 for step in steps[:2]):
                raise UserError("seccomp: one system call has too many rules for a BPF jump")
            out.append(struct.pack("<HBBI", code, steps[0], steps[1], steps[2]))
        if len(out) > MAX_INSNS:
            raise UserError(f"seccomp: the filter needs {len(out)} BPF instructions, more than "
                            f"the kernel's {MAX_INSNS}")  # fmt: skip
        return b"".join(out)


def _compare(asm: _Asm, cmp: ArgCmp, wide: bool, fail: str) -> None:
    """Fall through when argument *cmp.index* passes, jump to *fail* otherwise."""
    ok = asm.fresh("ok")
    lo_at, hi_at = ARGS + 8 * cmp.index, ARGS + 8 * cmp.index + 4
    value, two = cmp.value, cmp.value_two
    vlo, vhi = value & 0xFFFFFFFF, value >> 32
    if cmp.op == "SCMP_CMP_MASKED_EQ":
        if wide:
            asm.emit(LD_ABS, hi_at)
            asm.emit(AND, vhi)
            asm.emit(JEQ, two >> 32, 0, fail)
        asm.emit(LD_ABS, lo_at)
        asm.emit(AND, vlo)
        asm.emit(JEQ, two & 0xFFFFFFFF, ok, fail)
    else:
        # (high word decides, low word on a tie): where it goes when high >, == , <
        lo_jump = {
            "SCMP_CMP_EQ": (JEQ, ok, fail), "SCMP_CMP_NE": (JEQ, fail, ok),
            "SCMP_CMP_GT": (JGT, ok, fail), "SCMP_CMP_GE": (JGE, ok, fail),
            "SCMP_CMP_LT": (JGE, fail, ok), "SCMP_CMP_LE": (JGT, fail, ok),
        }[cmp.op]  # fmt: skip
        if wide:
            asm.emit(LD_ABS, hi_at)
            if cmp.op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
                asm.emit(JEQ, vhi, 0, fail if cmp.op == "SCMP_CMP_EQ" else ok)
            else:
                above = ok if cmp.op in ("SCMP_CMP_GT", "SCMP_CMP_GE") else fail
                below = fail if above == ok else ok
                asm.emit(JGT, vhi, above, 0)
                asm.emit(JEQ, vhi, 0, below)
        asm.emit(LD_ABS, lo_at)
        code, jt, jf = lo_jump
        asm.emit(code, vlo, jt, jf)
    asm.label(ok)


def _block(asm: _Asm, rules: list[Rule], wide: bool, default: tuple[str, int]) -> None:
    """The instructions for one syscall's *rules*: conditional ones first (most restrictive
    action first), then the unconditional one, else *default*."""
    order = sorted(rules, key=lambda r: (not r.args, PRECEDENCE.index(r.action)))
    for rule in order:
        if not rule.args:
            asm.ret(rule.action, rule.errno)
            return
        fail = asm.fresh("fail")
        for cmp in rule.args:
            _compare(asm, cmp, wide, fail)
        asm.ret(rule.action, rule.errno)
        asm.label(fail)
    asm.ret(*default)


def _arch(asm: _Asm, arch: str, flt: Filter) -> None:
    numbers = table(arch)
    by_number: dict[int, list[Rule]] = {}
    for rule in flt.rules:
        for name in dict.fromkeys(rule.names):
            if name in numbers:
                by_number.setdefault(numbers[name], []).append(rule)
    default = (flt.default_action, flt.default_errno)
    asm.emit(LD_ABS, NR)
    if arch == "SCMP_ARCH_X86_64":
        asm.emit(JGE, X32_BIT, 0, 1)
        asm.ret("SCMP_ACT_ERRNO", ENOSYS)
    for number in sorted(by_number):
        rules = by_number[number]
        if all(not r.args for r in rules):  # the common case: two instructions
            strictest = min(rules, key=lambda r: PRECEDENCE.index(r.action))
            asm.emit(JEQ, number, 0, 1)
            asm.ret(strictest.action, strictest.errno)
            continue
        after = asm.fresh("next")
        asm.emit(JEQ, number, 0, after)
        _block(asm, rules, WIDE[arch], default)
        asm.label(after)
    asm.ret(*default)


def compile_filter(flt: Filter) -> bytes:
    """The BPF program (``struct sock_filter`` array, little-endian) for *flt*."""
    asm = _Asm([], {}, itertools.count())
    arches = [a for a in dict.fromkeys(flt.arches) if a != "SCMP_ARCH_X32"]  # no x32 table
    for arch in arches:
        if arch not in AUDIT_ARCH:
            raise UserError(f"seccomp: architecture {arch} is not supported by unionfs "
                            f"(supported: {', '.join(AUDIT_ARCH)})")  # fmt: skip
    asm.emit(LD_ABS, ARCH)
    for arch in arches:
        asm.emit(JEQ, AUDIT_ARCH[arch], 0, 1)
        asm.jump(f"arch-{arch}")
    asm.ret("SCMP_ACT_ERRNO", ENOSYS)
    for arch in arches:
        asm.label(f"arch-{arch}")
        _arch(asm, arch, flt)
    return asm.assemble()
