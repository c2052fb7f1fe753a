"""Linux capability names and numbers, and the default set a container gets. Pure data.

Numbers are the kernel's (include/uapi/linux/capability.h). The default is docker's set
without CAP_MKNOD: unionfs applies no device cgroup to a ``--rootfs`` container, so creating
device nodes is not allowed at all rather than allowed and then fenced.
"""

from __future__ import annotations

from collections.abc import Iterable

from unionfs.errors import UserError

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
NUMBERS = {name: number for number, name in enumerate(NAMES)}

DEFAULT = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip


def own_bounding(status: str | None = None) -> tuple[int, ...]:
    """The capabilities this process may hand on (its bounding set, from /proc/self/status
    or *status*): "all of them" for --privileged means these (a machine may lack some)."""
    if status is None:
        with open("/proc/self/status", encoding="ascii") as f:
            status = f.read()
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return tuple(n for n in range(len(NAMES)) if mask >> n & 1)
    return tuple(range(len(NAMES)))


def numbers(names: Iterable[str], where: str) -> tuple[int, ...]:
    """Capability numbers for *names* (``CAP_KILL`` or ``KILL``), sorted; unknown: error."""
    result = set()
    for name in names:
        full = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
        if full not in NUMBERS:
            raise UserError(f"{where}: unknown capability {name!r}")
        result.add(NUMBERS[full])
    return tuple(sorted(result))
