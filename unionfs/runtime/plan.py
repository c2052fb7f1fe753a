"""A container's set-up as data: ``RunSpec`` -> an immutable tuple of steps (bubblewrap's way).

Pure: builds values, touches nothing. ``executor`` performs the steps, in order, in the
helper process; ``Fork`` splits them: the steps before it run in the helper (which then
reports the child's pid and exits), the rest in the child, which becomes the container's
process. Steps before ``PivotRoot`` name paths inside *root* (resolved there without
following a symlink out of it); the later ones name paths in the container. Adding user
namespaces later means adding steps (unshare USER, await the id maps), not a new executor.
"""

from __future__ import annotations

from dataclasses import dataclass

from unionfs.runtime import mountflags, seccompbpf
from unionfs.runtime.devices import STANDARD_NODES
from unionfs.runtime.hooks import Hooks
from unionfs.runtime.mountflags import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from unionfs.runtime.namespaces import CLONE_NEWCGROUP, KINDS
from unionfs.runtime.spec import MountSpec, Process, RunSpec
from unionfs.runtime.steps import (
    AwaitGo,
    AwaitStart,
    Chdir,
    CheckExecutable,
    DropBounding,
    Exec,
    Fork,
    Hook,
    LoopbackUp,
    MakeDir,
    MakeRprivate,
    MaskPath,
    Mount,
    NewSession,
    NoNewPrivileges,
    OomScoreAdj,
    PivotRoot,
    Propagation,
    ReadonlyPath,
    ReadonlyRoot,
    Remount,
    Rendezvous,
    RunHooks,
    Seccomp,
    SetCapabilities,
    SetDomainname,
    SetHostname,
    SetNs,
    SetRlimit,
    SetUser,
    Step,
    Symlink,
    Sysctl,
    Terminal,
    Umask,
    Unshare,
    dumps,
    loads,
)

DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
             ("pts/ptmx", "/dev/ptmx"))  # fmt: skip


__all__ = [
    "AwaitGo",
    "AwaitStart",
    "Chdir",
    "CheckExecutable",
    "DropBounding",
    "Exec",
    "Fork",
    "Hook",
    "Lifecycle",
    "LoopbackUp",
    "MakeDir",
    "MakeRprivate",
    "MaskPath",
    "Mount",
    "NewSession",
    "NoNewPrivileges",
    "OomScoreAdj",
    "PivotRoot",
    "Propagation",
    "ReadonlyPath",
    "ReadonlyRoot",
    "Remount",
    "Rendezvous",
    "RunHooks",
    "Seccomp",
    "SetCapabilities",
    "SetDomainname",
    "SetHostname",
    "SetNs",
    "SetRlimit",
    "SetUser",
    "Step",
    "Symlink",
    "Sysctl",
    "Terminal",
    "Umask",
    "Unshare",
    "cgroup_steps",
    "dev_steps",
    "dumps",
    "exec_plan",
    "loads",
    "mount_steps",
    "process_steps",
    "run_plan",
]


# -- building plans ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Lifecycle:
    """What an OCI ``create`` adds to a run plan: the listening socket that ``start``
    connects to (an fd the helper inherits), and the hooks."""

    start_fd: int
    hooks: Hooks


def _runtime_hooks(hooks: Hooks) -> bool:
    return bool(hooks.prestart or hooks.create_runtime or hooks.create_container
                or hooks.start_container)  # fmt: skip


def run_plan(spec: RunSpec, root: str, cgroup_dirs: tuple[tuple[str, str], ...] = (),
             host_devices: tuple[str, ...] = (),
             lifecycle: Lifecycle | None = None) -> tuple[Step, ...]:  # fmt: skip
    """The steps that turn a fresh helper into the container's process on *root*.
    *cgroup_dirs*: (name, host directory) of the container's cgroups, shown read-only at a
    ``cgroup`` mount; *host_devices*: device nodes of the host's /dev to bind (privileged);
    *lifecycle*: set up, then wait for ``start`` before the exec (OCI create)."""
    joined = dict(spec.namespace_paths)
    order = sorted(joined, key=lambda kind: (kind != "user", kind == "mount"))
    steps: list[Step] = [SetNs(joined[kind], kind) for kind in order]
    flags = 0
    for name in spec.namespaces:
        if name != "cgroup" and name not in joined:
            flags |= KINDS[name][0]
    steps += [Unshare(flags), Fork(), AwaitGo("cgroup"), NewSession()]
    if "cgroup" in spec.namespaces and "cgroup" not in joined:
        steps.append(Unshare(CLONE_NEWCGROUP))  # after joining the cgroups: they become its root
    steps.append(MakeRprivate())
    if lifecycle is not None:  # a bundle's root is a directory: pivot_root wants a mount
        steps.append(Mount(root, "/", root, "", MS_BIND | MS_REC))
    for mount in spec.mounts:
        if mount.type == "cgroup":
            steps += cgroup_steps(mount, root, cgroup_dirs)
            continue
        steps += mount_steps(mount, root)
        if mount.destination == "/dev" and mount.type == "tmpfs":
            steps += dev_steps(root, host_devices)
    if spec.process.make_cwd:
        steps.append(MakeDir(root, spec.process.cwd))
    if lifecycle is not None and _runtime_hooks(lifecycle.hooks):
        steps.append(Rendezvous("hooks"))  # the runtime runs prestart and createRuntime
        if lifecycle.hooks.create_container:
            steps.append(RunHooks("createContainer", lifecycle.hooks.create_container,
                                  "creating"))  # fmt: skip
    steps.append(PivotRoot(root))
    if spec.process.terminal:
        steps.append(Terminal(spec.process.uid, console=True))
    steps += [Sysctl(k, v) for k, v in spec.sysctl]
    steps += [MaskPath(p) for p in spec.masked_paths]
    steps += [ReadonlyPath(p) for p in spec.readonly_paths]
    if spec.readonly_root:
        steps.append(ReadonlyRoot())
    if spec.hostname is not None:
        steps.append(SetHostname(spec.hostname))
    if spec.domainname is not None:
        steps.append(SetDomainname(spec.domainname))
    if "network" in spec.namespaces:
        steps.append(LoopbackUp())
    steps += process_steps(spec.process, lifecycle)
    return tuple(steps)


def mount_steps(mount: MountSpec, root: str) -> list[Step]:
    parsed = mountflags.parse(mount.options, mount.destination)
    steps: list[Step] = []
    if mount.type == "bind":
        # A bind ignores every flag but MS_REC: the others need a remount (mount(8) does too).
        steps.append(Mount(root, mount.destination, mount.source, "", parsed.flags & (MS_BIND |
                           MS_REC) | MS_BIND, "", "auto"))  # fmt: skip
        extra = parsed.flags & ~(MS_BIND | MS_REC)
        if extra:
            steps.append(Remount(root, mount.destination, extra | MS_BIND | MS_REMOUNT))
    else:
        steps.append(Mount(root, mount.destination, mount.source, mount.type,
                           parsed.flags, parsed.data))  # fmt: skip
    if parsed.propagation:
        steps.append(Propagation(root, mount.destination, parsed.propagation))
    return steps


def dev_steps(root: str, host_devices: tuple[str, ...] = ()) -> list[Step]:
    """Device nodes bound from the host's /dev (bind mounts work rootless too) and links."""
    names = [f"/dev/{name}" for name, _major, _minor in STANDARD_NODES]
    names += [path for path in host_devices if path not in names]
    steps: list[Step] = [Mount(root, path, path, "", MS_BIND, "", "file") for path in names]
    steps += [Symlink(root, target, link) for target, link in DEV_LINKS]
    return steps


_CGROUP_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC


def cgroup_steps(mount: MountSpec, root: str, dirs: tuple[tuple[str, str], ...]) -> list[Step]:
    """The container's own cgroup directories, read-only, at the mount's destination (as
    runc binds them): one v2 directory is the destination itself, v1 ones sit in a tmpfs,
    one per hierarchy. No cgroup: nothing is mounted."""
    target = mount.destination
    if len(dirs) == 1 and dirs[0][0] == "":
        return [Mount(root, target, dirs[0][1], "", MS_BIND), Remount(root, target,
                MS_BIND | MS_REMOUNT | MS_RDONLY | _CGROUP_FLAGS)]  # fmt: skip
    if not dirs:
        return []
    steps: list[Step] = [Mount(root, target, "tmpfs", "tmpfs", _CGROUP_FLAGS, "mode=755")]
    for name, host in dirs:
        where = f"{target}/{name}"
        steps.append(Mount(root, where, host, "", MS_BIND))
        steps.append(Remount(root, where, MS_BIND | MS_REMOUNT | MS_RDONLY | _CGROUP_FLAGS))
    steps.append(Remount(root, target, MS_REMOUNT | MS_RDONLY | _CGROUP_FLAGS))
    return steps


def process_steps(process: Process, lifecycle: Lifecycle | None = None) -> list[Step]:
    """From the process's limits to exec: the part ``run`` and ``exec`` share. With
    *lifecycle*, the process waits for ``start`` right before the exec (before a seccomp
    filter that no_new_privs lets come last, as runc waits on its exec fifo)."""
    steps: list[Step] = [SetRlimit(r.resource, r.soft, r.hard) for r in process.rlimits]
    if process.oom_score_adj is not None:
        steps.append(OomScoreAdj(process.oom_score_adj))
    if process.umask is not None:
        steps.append(Umask(process.umask))
    steps.append(Chdir(process.cwd))
    caps = process.capabilities
    if caps is not None:
        steps.append(DropBounding(caps.bounding))  # needs CAP_SETPCAP: before setuid
    seccomp: list[Step] = []
    if process.seccomp is not None:
        program = seccompbpf.compile_filter(process.seccomp).hex()
        seccomp.append(Seccomp(program, process.seccomp.flags))
    if not process.no_new_privileges:
        # Without no_new_privs the kernel wants CAP_SYS_ADMIN for a filter: while we are
        # root still (as runc does); the rest of the steps' calls are in any sane filter.
        steps += seccomp
    steps.append(SetUser(process.uid, process.gid, process.groups, caps is not None))
    if caps is not None:
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # runc skips the others silently (its default spec lists ambient caps that are not
        # inheritable), and so do we.
        ambient = tuple(c for c in caps.ambient if c in caps.permitted and c in caps.inheritable)
        steps.append(SetCapabilities(caps.effective, caps.permitted, caps.inheritable,
                                     ambient))  # fmt: skip
    if process.no_new_privileges:
        steps.append(NoNewPrivileges())
    if lifecycle is not None:
        steps += [CheckExecutable(process.args[0], process.env), AwaitStart(lifecycle.start_fd)]
        if lifecycle.hooks.start_container:
            steps.append(RunHooks("startContainer", lifecycle.hooks.start_container, "created"))
    if process.no_new_privileges:
        steps += seccomp  # as late as can be: only exec is left to pass it
    steps.append(Exec(process.args, process.env))
    return steps


def exec_plan(pid: int, namespaces: tuple[str, ...], process: Process) -> tuple[Step, ...]:
    """Join the namespaces of the container's process *pid*, then become *process*.

    A user namespace is joined first (the others belong to it); the mount namespace
    last: after it, the host's /proc is out of sight."""
    order = sorted(namespaces, key=lambda kind: (kind != "user", kind == "mount"))
    steps: list[Step] = [SetNs(f"/proc/{pid}/ns/{KINDS[kind][1]}", kind) for kind in order]
    steps += [Fork(), AwaitGo("cgroup"), NewSession()]
    if process.terminal:
        steps.append(Terminal(process.uid, console=False))
    steps += process_steps(process)
    return tuple(steps)
