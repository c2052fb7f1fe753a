"""``RunSpec`` -> an OCI bundle's ``config.json`` (the inverse of ``oci.parse``), for handing
a container to another runtime (``unionfs run --runtime runc``).

Pure: a dict is built, nothing is written. Everything the spec holds is said in the
runtime-spec's terms, so that runc or crun applies the same isolation and limits as our
own executor: namespaces, mounts, masked and read-only paths, capabilities, no_new_privs,
the seccomp filter (as the rules it was compiled from), rlimits, the device rules, memory,
CPU and pids limits. The caller names the root (a mounted union) and the cgroups path.
"""

from __future__ import annotations

import os
import stat

from unionfs.runtime import caps
from unionfs.runtime.seccomp import Filter
from unionfs.runtime.spec import MountSpec, Process, Resources, RunSpec

OCI_VERSION = "1.0.2"


def _names(numbers: tuple[int, ...]) -> list[str]:
    return [caps.NAMES[n] for n in numbers]


def process(p: Process) -> dict[str, object]:
    user: dict[str, object] = {"uid": p.uid, "gid": p.gid}
    if p.groups:
        user["additionalGids"] = list(p.groups)
    if p.umask is not None:
        user["umask"] = p.umask
    doc: dict[str, object] = {
        "terminal": p.terminal,
        "user": user,
        "args": list(p.args),
        "env": list(p.env),
        "cwd": p.cwd,
        "noNewPrivileges": p.no_new_privileges,
        "rlimits": [{"type": r.resource, "soft": r.soft, "hard": r.hard} for r in p.rlimits],
    }
    c = p.capabilities
    if c is not None:
        doc["capabilities"] = {"bounding": _names(c.bounding), "effective": _names(c.effective),
                               "permitted": _names(c.permitted),
                               "inheritable": _names(c.inheritable),
                               "ambient": _names(c.ambient)}  # fmt: skip
    if p.oom_score_adj is not None:
        doc["oomScoreAdj"] = p.oom_score_adj
    return doc


_DENIALS = ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_TRAP")  # fmt: skip


def seccomp(f: Filter) -> dict[str, object]:
    """The filter's rules. One difference of reading is bridged: our compiler tries a
    syscall's argument rules before its unconditional one (clone: allowed without
    CLONE_NEW* flags, else EPERM), while libseccomp lets the unconditional rule win (every
    clone EPERM: no fork). So where both exist and the unconditional one and the default
    both deny, the unconditional one is left out: the call is then denied by the default
    instead (ENOSYS rather than EPERM), allowed exactly when our filter allows it."""
    conditional = {name for rule in f.rules if rule.args for name in rule.names}
    rules = []
    for rule in f.rules:
        names = list(rule.names)
        if not rule.args and rule.action in _DENIALS and f.default_action in _DENIALS:
            names = [n for n in names if n not in conditional]
            if not names:
                continue
        item: dict[str, object] = {"names": names, "action": rule.action}
        if rule.action == "SCMP_ACT_ERRNO":
            item["errnoRet"] = rule.errno
        if rule.args:
            item["args"] = [{"index": a.index, "value": a.value, "valueTwo": a.value_two,
                             "op": a.op} for a in rule.args]  # fmt: skip
        rules.append(item)
    flags = [name for name, bit in _SECCOMP_FLAGS if f.flags & bit]
    doc: dict[str, object] = {"defaultAction": f.default_action,
                              "architectures": list(f.arches), "syscalls": rules}  # fmt: skip
    if f.default_action == "SCMP_ACT_ERRNO":
        doc["defaultErrnoRet"] = f.default_errno
    if flags:
        doc["flags"] = flags
    return doc


_SECCOMP_FLAGS = (("SECCOMP_FILTER_FLAG_TSYNC", 1), ("SECCOMP_FILTER_FLAG_LOG", 2),
                  ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4))  # fmt: skip


def resources(r: Resources) -> dict[str, object]:
    doc: dict[str, object] = {}
    memory: dict[str, object] = {}
    if r.memory is not None:  # without a swap setting, no swap beyond the limit
        memory.update(limit=r.memory, swap=r.memory if r.memory_swap is None else r.memory_swap)
    for key, value in (("reservation", r.memory_reservation),
                       ("swappiness", r.memory_swappiness)):  # fmt: skip
        if value is not None:
            memory[key] = value
    if r.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        doc["memory"] = memory
    cpu: dict[str, object] = {}
    if r.cpu_quota is not None:
        cpu.update(quota=r.cpu_quota, period=r.cpu_period or 100_000)
    for key, given in (("shares", r.cpu_shares), ("cpus", r.cpuset_cpus),
                       ("mems", r.cpuset_mems)):  # fmt: skip
        if given is not None:
            cpu[key] = given
    if cpu:
        doc["cpu"] = cpu
    if r.blkio_weight is not None:
        doc["blockIO"] = {"weight": r.blkio_weight}
    if r.pids is not None:
        doc["pids"] = {"limit": r.pids}
    if r.devices is not None:
        rules = []
        for rule in r.devices:
            item: dict[str, object] = {"allow": rule.allow, "type": rule.kind,
                                       "access": rule.access}  # fmt: skip
            if rule.major is not None:
                item["major"] = rule.major
            if rule.minor is not None:
                item["minor"] = rule.minor
            rules.append(item)
        doc["devices"] = rules
    return doc


def device_nodes(paths: tuple[str, ...]) -> list[dict[str, object]]:
    """linux.devices entries for host device nodes (--privileged), as they are."""
    found = []
    for path in paths:
        st = os.stat(path)
        kind = "b" if stat.S_ISBLK(st.st_mode) else "c"
        found.append({"path": path, "type": kind, "major": os.major(st.st_rdev),
                      "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
                      "uid": st.st_uid, "gid": st.st_gid})  # fmt: skip
    return found


def _mount(m: MountSpec) -> dict[str, object]:
    options = list(m.options)
    if m.destination == "/dev" and m.type == "tmpfs":
        # Our executor binds the host's nodes (each a mount of its own); runc and crun make
        # them in this tmpfs, where nodev would make them unusable.
        options = [o for o in options if o != "nodev"]
    return {"destination": m.destination, "type": m.type, "source": m.source,
            "options": options}


def config(spec: RunSpec, root: str, cgroups_path: str,
           host_devices: tuple[str, ...] = ()) -> dict[str, object]:  # fmt: skip
    """config.json for *spec* over the directory *root*, its cgroups at *cgroups_path*."""
    joined = dict(spec.namespace_paths)
    linux: dict[str, object] = {
        "namespaces": [{"type": kind, **({"path": joined[kind]} if kind in joined else {})}
                       for kind in spec.namespaces],
        "resources": resources(spec.resources),
        "cgroupsPath": cgroups_path,
        "maskedPaths": list(spec.masked_paths),
        "readonlyPaths": list(spec.readonly_paths),
        "sysctl": dict(spec.sysctl),
    }
    if spec.process.seccomp is not None:
        linux["seccomp"] = seccomp(spec.process.seccomp)
    if host_devices:
        linux["devices"] = device_nodes(host_devices)
    doc: dict[str, object] = {
        "ociVersion": OCI_VERSION,
        "process": process(spec.process),
        "root": {"path": root, "readonly": spec.readonly_root},
        "mounts": [_mount(m) for m in spec.mounts],
        "linux": linux,
    }
    if spec.hostname is not None:
        doc["hostname"] = spec.hostname
    if spec.domainname is not None:
        doc["domainname"] = spec.domainname
    if spec.annotations:
        doc["annotations"] = dict(spec.annotations)
    return doc

