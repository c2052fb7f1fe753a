"""Seccomp, pure: profiles (docker's and containers-common's shape, an OCI bundle's) ->
``Filter`` -> the BPF program, whose answers are read with a small BPF interpreter
(``bpfvm``) for many calls and arguments without loading anything; then the default
program loaded for real in a child process."""

from __future__ import annotations

import errno
import os

import pytest

from runtime import bpfvm
from runtime.bpfvm import ALLOW, AUDIT_ARCH_I386
from unionfs.errors import UserError
from unionfs.runtime import caps, seccomp, seccompbpf
from unionfs.runtime import namespaces as ns

X86_64 = "SCMP_ARCH_X86_64"
NR = seccompbpf.table(X86_64)
NR32 = seccompbpf.table("SCMP_ARCH_X86")
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17


def default(extra_caps: tuple[str, ...] = ()) -> bytes:
    flt = seccomp.parse(seccomp.default_profile(), (*caps.DEFAULT, *extra_caps), X86_64)
    return seccompbpf.compile_filter(flt)


def ask(program: bytes, name: str, *args: int, arch: int = bpfvm.AUDIT_ARCH_X86_64) -> int:
    table = NR32 if arch == AUDIT_ARCH_I386 else NR
    return bpfvm.run(program, table[name], arch, tuple(args))


@pytest.mark.parametrize(
    ("name", "args", "answer"),
    [
        ("read", (), ALLOW),
        ("execve", (), ALLOW),
        ("clone", (SIGCHLD,), ALLOW),  # fork
        ("clone", (0x3D0F00,), ALLOW),  # a thread (pthread_create's flags)
        ("clone", (CLONE_NEWUSER | SIGCHLD,), bpfvm.errno(errno.EPERM)),  # a namespace: no
        ("clone3", (), bpfvm.errno(errno.ENOSYS)),  # libc falls back to clone
        ("unshare", (), bpfvm.errno(errno.EPERM)),
        ("mount", (), bpfvm.errno(errno.EPERM)),
        ("setns", (), bpfvm.errno(errno.EPERM)),
        ("keyctl", (), bpfvm.errno(errno.EPERM)),  # the kernel keyring is not namespaced
        ("kexec_load", (), bpfvm.errno(errno.EPERM)),
        ("socket", (2, 1, 0), ALLOW),  # AF_INET
        ("socket", (40, 1, 0), bpfvm.errno(errno.EAFNOSUPPORT)),  # AF_VSOCK reaches the host
        ("personality", (0x8,), ALLOW),  # PER_LINUX32
        ("personality", (0xFFFFFFFF,), ALLOW),  # the query
        ("personality", (0x0400000,), bpfvm.errno(errno.ENOSYS)),  # ADDR_NO_RANDOMIZE
        ("chroot", (), ALLOW),  # CAP_SYS_CHROOT is in the default set
        ("ptrace", (), ALLOW),
        ("listns", (), bpfvm.errno(errno.ENOSYS)),  # new and unknown to the profile
    ],
)
def test_the_default_filter_answers_as_dockers_profile(
    name: str, args: tuple[int, ...], answer: int
) -> None:
    assert ask(default(), name, *args) == answer


def test_capabilities_open_the_calls_they_stand_for() -> None:
    program = default(("CAP_SYS_ADMIN", "CAP_SYS_TIME"))
    assert ask(program, "mount") == ALLOW
    assert ask(program, "clone", CLONE_NEWUSER | SIGCHLD) == ALLOW
    assert ask(program, "clone3") == ALLOW
    assert ask(program, "settimeofday") == ALLOW
    assert ask(default(), "settimeofday") == bpfvm.errno(errno.EPERM)
    without_chroot = seccomp.parse(seccomp.default_profile(), ["CAP_KILL"], X86_64)
    assert ask(seccompbpf.compile_filter(without_chroot), "chroot") == bpfvm.errno(errno.EPERM)


def test_i386_calls_get_their_own_numbers_and_the_same_rules() -> None:
    program = default()
    assert ask(program, "read", arch=AUDIT_ARCH_I386) == ALLOW
    assert ask(program, "socketcall", arch=AUDIT_ARCH_I386) == ALLOW
    assert ask(program, "mount", arch=AUDIT_ARCH_I386) == bpfvm.errno(errno.EPERM)
    assert ask(program, "clone", CLONE_NEWUSER, arch=AUDIT_ARCH_I386) == bpfvm.errno(errno.EPERM)
    # i386's 21 is mount: the x86_64 table must not answer for it (21 is access there)
    assert NR32["mount"] == 21 and ask(program, "access") == ALLOW


def test_other_architectures_and_x32_numbers_get_enosys() -> None:
    program = default()
    aarch64 = 0xC00000B7
    assert bpfvm.run(program, NR["read"], aarch64) == bpfvm.errno(errno.ENOSYS)
    assert bpfvm.run(program, 0x40000000 | NR["read"]) == bpfvm.errno(errno.ENOSYS)


def one_rule(op: str, value: int, two: int = 0, arch: str = X86_64) -> bytes:
    cmp = {"index": 1, "value": value, "valueTwo": two, "op": op}
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": [arch],
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [cmp]}]}
    return seccompbpf.compile_filter(seccomp.parse(profile, [], arch))


HIGH = 1 << 32


@pytest.mark.parametrize(
    ("op", "value", "arg", "allowed"),
    [
        ("SCMP_CMP_EQ", HIGH + 5, HIGH + 5, True),
        ("SCMP_CMP_EQ", HIGH + 5, 5, False),  # the high word counts
        ("SCMP_CMP_NE", HIGH + 5, 5, True),
        ("SCMP_CMP_NE", 7, 7, False),
        ("SCMP_CMP_GT", HIGH, HIGH + 1, True),
        ("SCMP_CMP_GT", HIGH + 1, HIGH + 1, False),
        ("SCMP_CMP_GT", 5, HIGH, True),  # a larger high word, a smaller low word
        ("SCMP_CMP_GE", HIGH + 1, HIGH + 1, True),
        ("SCMP_CMP_GE", HIGH + 2, HIGH + 1, False),
        ("SCMP_CMP_LT", HIGH, 2**32 - 1, True),
        ("SCMP_CMP_LT", HIGH, HIGH, False),
        ("SCMP_CMP_LT", HIGH + 9, 2 * HIGH, False),
        ("SCMP_CMP_LE", HIGH, HIGH, True),
        ("SCMP_CMP_LE", HIGH, HIGH + 1, False),
    ],
)
def test_64_bit_comparisons(op: str, value: int, arg: int, allowed: bool) -> None:
    answer = bpfvm.run(one_rule(op, value), NR["read"], args=(0, arg))
    assert (answer == ALLOW) is allowed


def test_masked_eq_compares_the_masked_bits_only() -> None:
    program = one_rule("SCMP_CMP_MASKED_EQ", HIGH | 0xF0, HIGH | 0x30)
    assert bpfvm.run(program, NR["read"], args=(0, HIGH | 0x3F)) == ALLOW
    assert bpfvm.run(program, NR["read"], args=(0, 0x3F)) != ALLOW  # high bit missing
    assert bpfvm.run(program, NR["read"], args=(0, HIGH | 0x70)) != ALLOW


def test_a_conditional_rule_is_tried_before_an_unconditional_one() -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["write"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["write"], "action": "SCMP_ACT_KILL_PROCESS",
         "args": [{"index": 0, "value": 666, "op": "SCMP_CMP_EQ"}]},
        {"names": ["no_such_call", "getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    ]}  # fmt: skip
    program = seccompbpf.compile_filter(seccomp.parse(profile, [], X86_64))
    assert bpfvm.run(program, NR["write"], args=(1,)) == ALLOW
    assert bpfvm.run(program, NR["write"], args=(2,)) == bpfvm.errno(13)
    assert bpfvm.run(program, NR["write"], args=(666,)) == 0x80000000  # KILL_PROCESS
    assert bpfvm.run(program, NR["getpid"]) == bpfvm.errno(1)  # an unknown name is skipped
    assert bpfvm.run(program, NR["read"]) == ALLOW  # the default


def test_an_oci_bundles_seccomp_reads_the_same() -> None:
    oci = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
           "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}  # fmt: skip
    flt = seccomp.parse(oci, [], X86_64)
    assert flt.arches == (X86_64, "SCMP_ARCH_X86")  # the native one is always in
    assert flt.flags == 4 and flt.rules[0].errno == errno.EPERM
    program = seccompbpf.compile_filter(flt)
    assert bpfvm.run(program, NR["mkdir"]) == bpfvm.errno(errno.EPERM)
    assert bpfvm.run(program, NR32["mkdir"], AUDIT_ARCH_I386) == bpfvm.errno(errno.EPERM)


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY' is not supported"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "args": [
            {"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}, "index must be 0 to 5"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_SORTA"}]}]}, "is not a comparison"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW"]}, "flag"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "read"}, "syscalls has the wrong"),
        ([], "must be a JSON object"),
    ],
)  # fmt: skip
def test_bad_profiles_are_one_clear_error(profile: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        seccomp.parse(profile, [], X86_64)


def test_an_architecture_without_a_table_is_refused() -> None:
    flt = seccomp.parse({"defaultAction": "SCMP_ACT_ALLOW"}, [], "SCMP_ARCH_AARCH64")
    with pytest.raises(UserError, match="SCMP_ARCH_AARCH64 is not supported"):
        seccompbpf.compile_filter(flt)


def test_the_default_program_loaded_in_a_process() -> None:
    """Seccomp 2 in /proc/self/status, unshare refused, ordinary calls fine."""
    program = default()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        code = 1
        try:
            ns.prctl(ns.PR_SET_NO_NEW_PRIVS, 1)
            ns.seccomp_filter(program, 0)
            with open("/proc/self/status", encoding="ascii") as f:
                mode = next(line.split()[1] for line in f if line.startswith("Seccomp:"))
            try:
                ns.unshare(ns.CLONE_NEWUTS)
                unshare = "allowed"
            except OSError as exc:
                unshare = str(exc.errno)
            os.write(write, f"{mode} {unshare} {os.getpid() > 0}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    said = os.read(read, 100).decode()
    os.close(read)
    assert status == 0 and said == f"2 {errno.EPERM} True"
