"""What a container is to be: ``RunSpec``, a frozen value built from CLI flags or config.json.

This module owns the values and the CLI side (``from_cli``); ``oci`` builds the same value
from an OCI bundle. Pure: no file is read here, no directory checked (``run`` does that), so
every rule is testable without privileges.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from unionfs.errors import UserError
from unionfs.runtime import caps, devices, mountflags, network, security, units
from unionfs.runtime.devices import DeviceRule
from unionfs.runtime.hooks import Hooks
from unionfs.runtime.network import Port
from unionfs.runtime.seccomp import Filter

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Namespaces unionfs can create; "user" comes with rootless containers.
NAMESPACES = ("cgroup", "ipc", "mount", "network", "pid", "uts")
DEFAULT_NAMESPACES = ("cgroup", "ipc", "mount", "network", "pid", "uts")


@dataclass(frozen=True, slots=True)
class MountSpec:
    """One mount in the container, in config.json's terms; *source* of a bind is a host path."""

    destination: str
    type: str  # proc, sysfs, tmpfs, devpts, mqueue, bind or cgroup (the container's own)
    source: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    memory: int | None = None  # bytes; swap is not allowed beyond it
    cpu_quota: int | None = None  # microseconds per period
    cpu_period: int | None = None
    pids: int | None = None
    devices: tuple[DeviceRule, ...] | None = None  # None: no device cgroup asked for
    # From a bundle (as runc applies them): weights, cpusets, memory's softer settings
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    memory_reservation: int | None = None  # bytes: a soft limit
    memory_swap: int | None = None  # memory + swap, bytes (-1: no limit); None: no swap
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    blkio_weight: int | None = None

    def controllers(self) -> tuple[str, ...]:
        """The cgroup controllers these limits need (others are joined when present)."""
        wanted = {
            "memory": (self.memory, self.memory_reservation, self.memory_swap,
                       self.memory_swappiness, self.oom_kill_disable or None),
            "cpu": (self.cpu_quota, self.cpu_shares),
            "pids": (self.pids,),
            "devices": (self.devices,),
            "cpuset": (self.cpuset_cpus, self.cpuset_mems),
            "blkio": (self.blkio_weight,),
        }  # fmt: skip
        return tuple(c for c, values in wanted.items() if any(v is not None for v in values))


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Capability numbers per set, sorted."""

    bounding: tuple[int, ...]
    effective: tuple[int, ...]
    permitted: tuple[int, ...]
    inheritable: tuple[int, ...] = ()
    ambient: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Rlimit:
    resource: str  # RLIMIT_NOFILE ...
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class Process:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    umask: int | None = None
    capabilities: Capabilities | None = None  # None: keep all (never chosen by from_cli)
    no_new_privileges: bool = False
    rlimits: tuple[Rlimit, ...] = ()
    oom_score_adj: int | None = None
    terminal: bool = False  # a pty of the container's own devpts, relayed by the runtime
    interactive: bool = False  # the caller's stdin (else /dev/null); never its terminal
    seccomp: Filter | None = None  # None: no filter
    make_cwd: bool = False  # create cwd if missing (docker -w does; a bundle's must exist)


@dataclass(frozen=True, slots=True)
class RunSpec:
    process: Process
    rootfs: str  # the host directory that becomes the single lower layer
    readonly_root: bool = False
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[MountSpec, ...] = ()
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    resources: Resources = field(default_factory=Resources)
    sysctl: tuple[tuple[str, str], ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    name: str | None = None
    remove: bool = False
    hostname_from_id: bool = False  # docker's default: the short id, also as $HOSTNAME
    # --privileged: the host's device nodes bound in, and the image's usable (no nodev)
    privileged: bool = False
    network: str = "none"  # network.MODES; "private" is served by pasta
    ports: tuple[Port, ...] = ()  # -p, published through pasta
    # From an OCI bundle: namespaces to join (kind, path), the hooks, linux.cgroupsPath
    # (honoured by the OCI runtime; ``unionfs run`` always places cgroups below its own)
    namespace_paths: tuple[tuple[str, str], ...] = ()
    hooks: Hooks = field(default_factory=Hooks)
    cgroups_path: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # --label (over the image's), for ps and inspect

    def with_id(self, short_id: str) -> RunSpec:
        """This spec for the container *short_id* (fills in ``hostname_from_id``)."""
        if not self.hostname_from_id:
            return self
        env = merge_env([f"HOSTNAME={short_id}"], self.process.env)
        process = dataclasses.replace(self.process, env=env)
        return dataclasses.replace(self, hostname=short_id, process=process,
                                   hostname_from_id=False)  # fmt: skip


DEFAULT_MOUNTS = (
    MountSpec("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    # nodev: its device nodes are bind mounts of the host's (each its own mount)
    MountSpec("/dev", "tmpfs", "tmpfs",
              ("nosuid", "nodev", "strictatime", "mode=755", "size=65536k")),
    MountSpec("/dev/pts", "devpts", "devpts",
              ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
    MountSpec("/dev/shm", "tmpfs", "shm",
              ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
    MountSpec("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    MountSpec("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    # the container's own cgroups, read-only (what it sees there are its own limits)
    MountSpec("/sys/fs/cgroup", "cgroup", "cgroup", ("nosuid", "noexec", "nodev", "ro")),
)  # fmt: skip
# As docker --privileged: /dev may hold the host's device nodes, /sys is writable.
PRIVILEGED_MOUNTS = tuple(
    MountSpec(m.destination, m.type, m.source,
              tuple(o for o in m.options if not (o == "ro" and m.type == "sysfs")
                    and not (o == "nodev" and m.destination == "/dev")))
    for m in DEFAULT_MOUNTS
)  # fmt: skip
# Kernel interfaces a container should neither read nor change: docker's and podman's lists
# together, and /proc/interrupts (the host's interrupt counts: a side channel).
DEFAULT_MASKED = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap", "/sys/dev/block",
    "/sys/fs/selinux",
)  # fmt: skip
DEFAULT_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
MOUNT_TYPES = ("bind", "cgroup", "devpts", "mqueue", "proc", "sysfs", "tmpfs")


def container_path(path: str, what: str) -> str:
    """*path* normalised; it must be absolute (it is resolved inside the container root)."""
    if not path.startswith("/"):
        raise UserError(f"{what} {path!r} must be an absolute path")
    if "\0" in path:
        raise UserError(f"{what} {path!r} contains a NUL byte")
    return posixpath.normpath(path).replace("//", "/")


def check_mount(mount: MountSpec, where: str) -> MountSpec:
    """*mount* with a normalised destination, its type and options checked."""
    if mount.type not in MOUNT_TYPES:
        raise UserError(f"{where}: mount type {mount.type!r} is not supported "
                        f"(supported: {', '.join(MOUNT_TYPES)})")  # fmt: skip
    destination = container_path(mount.destination, f"{where}: destination")
    if destination == "/":
        raise UserError(f"{where}: cannot mount over the container's root")
    if mount.type == "bind" and not mount.source.startswith("/"):
        raise UserError(f"{where}: bind source {mount.source!r} must be an absolute host path")
    mountflags.parse(mount.options, where)
    return MountSpec(destination, mount.type, mount.source, tuple(mount.options))


def parse_env(items: Sequence[str], host_env: Mapping[str, str]) -> tuple[str, ...]:
    """``K=V`` as given; a bare ``K`` takes the host's value, or is dropped (as docker)."""
    result = []
    for item in items:
        key, eq, _value = item.partition("=")
        if not key or "\0" in item:
            raise UserError(f"--env {item!r}: expected KEY=VALUE")
        if eq:
            result.append(item)
        elif key in host_env:
            result.append(f"{key}={host_env[key]}")
    return tuple(result)


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> tuple[str, ...]:
    """*base* with each key of *overrides* replaced in place or appended."""
    merged: dict[str, str] = {}
    for item in (*base, *overrides):
        merged[item.partition("=")[0]] = item
    return tuple(merged.values())


def parse_user(text: str) -> tuple[int, int]:
    """``UID[:GID]`` (numbers; names would need the image's /etc/passwd)."""
    uid_text, _, gid_text = text.partition(":")
    try:
        uid = int(uid_text)
        gid = int(gid_text) if gid_text else 0
    except ValueError:
        raise UserError(f"--user {text!r}: give numbers, UID[:GID] "
                        "(user names need the image's /etc/passwd)") from None  # fmt: skip
    if not (0 <= uid < 2**32 - 1 and 0 <= gid < 2**32 - 1):
        raise UserError(f"--user {text!r}: out of range")
    return uid, gid


def parse_tmpfs(text: str) -> MountSpec:
    """``--tmpfs CDIR[:OPTIONS]``: a tmpfs, rw,noexec,nosuid,nodev unless OPTIONS say
    otherwise (as podman)."""
    target, _, given = text.partition(":")
    options = ["rw", "noexec", "nosuid", "nodev"]
    for option in filter(None, given.split(",")):
        opposite = {"exec": "noexec", "suid": "nosuid", "dev": "nodev", "ro": "rw"}.get(option)
        options = [o for o in options if o != opposite] + [option]
    mount = MountSpec(container_path(target, "--tmpfs"), "tmpfs", "tmpfs", tuple(options))
    return check_mount(mount, f"--tmpfs {text}")


def parse_volume(text: str, volume_dir: VolumeDir | None = None) -> MountSpec:
    """``HOSTDIR:CDIR[:ro|rw]`` -> a bind mount (``rbind``; read-only ones are not recursive,
    so that no submount stays writable). ``NAME:CDIR``: the named volume's directory, from
    *volume_dir* (which makes it when missing, as podman does)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UserError(f"-v {text!r}: expected HOSTDIR:CONTAINERDIR[:ro]")
    host, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise UserError(f"-v {text!r}: the mode must be ro or rw, not {mode!r}")
    if not host.startswith("/"):
        if volume_dir is None:
            raise UserError(f"-v {text!r}: named volumes need the image store; "
                            "give an absolute host path")  # fmt: skip
        if not VOLUME_NAME.fullmatch(host):
            raise UserError(f"-v {text!r}: give an absolute host path or a volume name "
                            "([a-zA-Z0-9][a-zA-Z0-9_.-]*)")  # fmt: skip
        host = volume_dir(host)
    options = ("bind", "ro", "nosuid", "nodev") if mode == "ro" else ("rbind",)
    return check_mount(MountSpec(target, "bind", host, options), f"-v {text!r}")


VolumeDir = Callable[[str], str]  # a volume's name -> its host directory (made if missing)
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
INIT_PATH = "/run/podman-init"  # where podman puts it too: scripts that look for it find it


def from_cli(
    *,
    rootfs: str,
    command: Sequence[str],
    host_env: Mapping[str, str],
    name: str | None = None,
    remove: bool = False,
    hostname: str | None = None,
    memory: str | None = None,
    cpus: str | None = None,
    pids: str | None = None,
    env: Sequence[str] = (),
    workdir: str | None = None,
    user: str | None = None,
    volumes: Sequence[str] = (),
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    privileged: bool = False,
    security_opt: Sequence[str] = (),
    interactive: bool = False,
    tty: bool = False,
    network_mode: str | None = None,
    publish: Sequence[str] = (),
    home: str | None = None,
    groups: Sequence[int] = (),
    read_only: bool = False,
    tmpfs: Sequence[str] = (),
    mounts: Sequence[MountSpec] = (),
    rlimits: Sequence[Rlimit] = (),
    labels: Sequence[tuple[str, str]] = (),
    init: str | None = None,
    device_rules: Sequence[DeviceRule] = (),
    volume_dir: VolumeDir | None = None,
) -> RunSpec:
    """The spec of ``unionfs run``'s flags. *mounts*, *rlimits*, *device_rules*: --mount and
    --device (their binds), --ulimit, as ``runflags`` reads them; *init*: the init program's
    host path (--init); *volume_dir*: where named volumes are (-v NAME:/dir)."""
    if not command:
        raise UserError("no command given (an image's default command comes with the store)")
    uid, gid = parse_user(user) if user is not None else (0, 0)
    cwd = container_path(workdir, "--workdir") if workdir is not None else "/"
    quota, period = units.parse_cpus(cpus) if cpus is not None else (None, None)
    sec = security.parse(cap_add=cap_add, cap_drop=cap_drop, privileged=privileged,
                         options=security_opt)  # fmt: skip
    mknod = caps.NUMBERS["CAP_MKNOD"] in sec.bounding
    resources = Resources(
        memory=units.parse_memory(memory) if memory is not None else None,
        cpu_quota=quota,
        cpu_period=period,
        pids=units.parse_pids(pids) if pids is not None else None,
        devices=devices.ALLOW_ALL if privileged else
        (*devices.default_rules(mknod), *device_rules),
    )
    if hostname is not None:
        check_hostname(hostname, "--hostname")
    defaults = [f"PATH={DEFAULT_PATH}", f"HOME={home or ('/root' if uid == 0 else '/')}"]
    if tty:
        defaults.append("TERM=xterm")
    if hostname is not None:
        defaults.append(f"HOSTNAME={hostname}")
    # As for any process: setuid to a non-root user clears the permitted and effective sets.
    held = sec.bounding if uid == 0 else ()
    process = Process(
        args=tuple(command),
        env=merge_env(defaults, parse_env(env, host_env)),
        cwd=cwd,
        uid=uid,
        gid=gid,
        groups=tuple(groups),
        capabilities=Capabilities(sec.bounding, held, held, held),
        no_new_privileges=sec.no_new_privileges,
        terminal=tty,
        interactive=interactive,
        seccomp=sec.seccomp,
        make_cwd=workdir is not None,
        rlimits=tuple(rlimits),
    )
    if init is not None:
        process = dataclasses.replace(process, args=(INIT_PATH, "--", *command))
    ports = tuple(network.parse_publish(p) for p in publish)
    mode = network.mode_for(network_mode, ports)
    binds = tuple(parse_volume(v, volume_dir) for v in volumes)
    binds += tuple(parse_tmpfs(t) for t in tmpfs)
    binds += tuple(mounts)
    destinations = [m.destination for m in binds]
    if len(set(destinations)) != len(destinations):
        raise UserError("-v/--tmpfs/--mount/--device: two mounts on the same container path")
    if init is not None:  # read-only, where podman puts it
        binds += (MountSpec(INIT_PATH, "bind", init, ("bind", "ro", "nosuid", "nodev")),)
    return RunSpec(
        process=process,
        rootfs=rootfs,
        readonly_root=read_only,
        hostname=hostname,
        mounts=(PRIVILEGED_MOUNTS if privileged else DEFAULT_MOUNTS) + binds,
        resources=resources,
        masked_paths=DEFAULT_MASKED if sec.system_paths else (),
        readonly_paths=DEFAULT_READONLY if sec.system_paths else (),
        name=name,
        remove=remove,
        hostname_from_id=hostname is None,
        privileged=privileged,
        network=mode,
        ports=ports,
        namespaces=tuple(n for n in DEFAULT_NAMESPACES if n != "network" or mode != "host"),
        labels=tuple(dict(labels).items()),
    )



def check_hostname(hostname: str, where: str) -> None:
    if not 0 < len(hostname.encode()) <= 64 or "\0" in hostname or "/" in hostname:
        raise UserError(f"{where} {hostname!r}: a host name is 1 to 64 bytes, without / or NUL")
