"""An OCI runtime bundle's ``config.json`` -> ``RunSpec``: what is supported, ignored, refused.

Every field is accounted for: supported ones are translated; the few ignored ones are listed
in ``IGNORED`` with why ignoring them is safe; anything else that is present and not empty
is refused with its JSON path named, so a bundle never runs with less isolation or fewer
limits than it asked for. Readings to know: ``process.terminal`` gives a pty of the
container's own, relayed by the runtime; ``linux.seccomp`` is compiled by unionfs (no
``SCMP_ACT_NOTIFY``; none given, no filter, as runc); device rules read over "deny all",
the standard set allowed and, with CAP_MKNOD in the bounding set, creating any node, as
runc's do; an absent ``process.capabilities`` means none at all (runc keeps all).
``parse`` is pure but for the kernel version (``minKernel``); ``load`` reads the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
from typing import cast

from unionfs.errors import UserError
from unionfs.runtime import caps, hooks, seccomp, security, spec
from unionfs.runtime import devices as devicepolicy
from unionfs.runtime.devices import DeviceRule
from unionfs.runtime.spec import MountSpec, Resources, Rlimit, RunSpec

JSON = object

# Present or not, these change nothing that matters for isolation or limits.
IGNORED = {
    "process.consoleSize": "only sizes a terminal: the caller's terminal's size is used",
    "linux.resources.memory.kernel": "kernel memory accounting: deprecated, runc ignores it",
    "linux.resources.memory.kernelTCP": "likewise deprecated (runc ignores it)",
}

# Every property runtime-spec 1.0.2 defines in these objects (config.md, config-linux.md):
# one of them that is not supported is refused, any other is an extension and ignored.
SPEC = {
    "": frozenset({"ociVersion", "process", "root", "hostname", "domainname", "mounts",
                   "hooks", "annotations", "linux", "solaris", "windows", "vm", "zos"}),
    "process": frozenset({"terminal", "consoleSize", "cwd", "env", "args", "commandLine",
                          "rlimits", "apparmorProfile", "capabilities", "noNewPrivileges",
                          "oomScoreAdj", "scheduler", "selinuxLabel", "ioPriority", "user",
                          "execCPUAffinity"}),
    "linux": frozenset({"namespaces", "uidMappings", "gidMappings", "timeOffsets", "devices",
                        "cgroupsPath", "rdmaPath", "resources", "unified", "intelRdt",
                        "sysctl", "seccomp", "rootfsPropagation", "maskedPaths",
                        "readonlyPaths", "mountLabel", "personality"}),
    "linux.resources": frozenset({"devices", "memory", "cpu", "blockIO", "hugepageLimits",
                                  "network", "pids", "rdma", "unified"}),
    "root": frozenset({"path", "readonly"}),
}  # fmt: skip


class _Fields:
    """A JSON object whose fields are taken one by one; the rest are refused at the end."""

    def __init__(self, value: JSON, where: str) -> None:
        if not isinstance(value, dict):
            raise UserError(f"config.json: {where or 'the top level'} must be an object")
        self.data = cast(dict[str, JSON], value)
        self.where = where
        self.taken: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: JSON = None) -> JSON:
        self.taken.add(key)
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            raise UserError(f"config.json: {self.path(key)} has the wrong type")
        return value

    def sub(self, key: str) -> _Fields:
        return _Fields(self.get(key, dict, {}), self.path(key))

    def done(self) -> None:
        """Refuse whatever was not taken, unless it is empty or listed as ignorable, or a
        property the runtime-spec does not define where it lists them all (``SPEC``: an
        extension, which runtime-spec says MUST NOT be an error)."""
        for key, value in self.data.items():
            if key in self.taken or self.path(key) in IGNORED or value in (None, "", [], {}):
                continue
            if self.where in SPEC and key not in SPEC[self.where]:
                continue
            raise UserError(f"config.json: {self.path(key)} is not supported by unionfs")


def _str(fields: _Fields, key: str, default: str | None = None) -> str | None:
    value = fields.get(key, str, default)
    return cast("str | None", value)


def _int(fields: _Fields, key: str) -> int | None:
    return cast("int | None", fields.get(key, int))


def _strings(fields: _Fields, key: str) -> tuple[str, ...]:
    value = cast(list[JSON], fields.get(key, list, []))
    if not all(isinstance(item, str) for item in value):
        raise UserError(f"config.json: {fields.path(key)} must be a list of strings")
    return tuple(cast(list[str], value))


def _objects(fields: _Fields, key: str) -> list[_Fields]:
    value = cast(list[JSON], fields.get(key, list, []))
    return [_Fields(item, f"{fields.path(key)}[{i}]") for i, item in enumerate(value)]


def parse(config: JSON, bundle: str, name: str | None, remove: bool,
          interactive: bool = False, native: str = "SCMP_ARCH_X86_64") -> RunSpec:  # fmt: skip
    top = _Fields(config, "")
    version = _str(top, "ociVersion")
    if version is None or not version.startswith("1."):
        raise UserError(f"config.json: ociVersion {version!r} is not a 1.x runtime spec")
    root = top.sub("root")
    root_path = _str(root, "path")
    if not root_path:
        raise UserError("config.json: root.path is missing")
    readonly = bool(root.get("readonly", bool, False))
    root.done()
    hostname = _str(top, "hostname")
    if hostname:
        spec.check_hostname(hostname, "config.json: hostname")
    domainname = _str(top, "domainname")
    process = process_from(top.sub("process"), interactive)
    mounts = _mounts(top)
    linux = top.sub("linux")
    held = [caps.NAMES[c] for c in (process.capabilities.bounding if process.capabilities
                                    else range(len(caps.NAMES)))]  # fmt: skip
    if linux.data.get("seccomp"):
        filt = seccomp.parse(linux.get("seccomp", dict), held, native, security.kernel_version())
        process = dataclasses.replace(process, seccomp=filt)
    namespaces, joined = _namespaces(linux)
    if "mount" not in namespaces:
        raise UserError("config.json: linux.namespaces must include a mount namespace")
    if "uts" not in namespaces and (hostname or domainname):
        raise UserError("config.json: hostname needs a uts namespace in linux.namespaces")
    resources = _resources(linux.sub("resources"), "CAP_MKNOD" in held)
    sysctl = cast(dict[str, JSON], linux.get("sysctl", dict, {}))
    if not all(isinstance(v, str) for v in sysctl.values()):
        raise UserError("config.json: linux.sysctl values must be strings")
    masked = tuple(spec.container_path(p, "linux.maskedPaths") for p in
                   _strings(linux, "maskedPaths"))  # fmt: skip
    ro_paths = tuple(spec.container_path(p, "linux.readonlyPaths") for p in
                     _strings(linux, "readonlyPaths"))  # fmt: skip
    cgroups_path = _str(linux, "cgroupsPath") or None
    propagation = _str(linux, "rootfsPropagation")
    if propagation not in (None, "", "private", "rprivate", "slave", "rslave"):
        raise UserError(f"config.json: linux.rootfsPropagation {propagation!r} is not "
                        "supported (the container's mounts are always private)")  # fmt: skip
    linux.done()
    found_hooks = hooks.parse(top.get("hooks", dict))
    annotations = cast(dict[str, JSON], top.get("annotations", dict, {}))
    if not all(isinstance(v, str) for v in annotations.values()):
        raise UserError("config.json: annotations values must be strings")
    top.done()
    return RunSpec(
        process=process,
        rootfs=os.path.normpath(os.path.join(bundle, root_path)),
        readonly_root=readonly,
        hostname=hostname or None,
        domainname=domainname or None,
        mounts=mounts,
        namespaces=namespaces,
        resources=resources,
        sysctl=tuple(sorted((k, cast(str, v)) for k, v in sysctl.items())),
        masked_paths=masked,
        readonly_paths=ro_paths,
        name=name,
        remove=remove,
        namespace_paths=joined,
        hooks=found_hooks,
        cgroups_path=cgroups_path,
        annotations=tuple(sorted((k, cast(str, v)) for k, v in annotations.items())),
    )


def parse_process(value: JSON, interactive: bool = True) -> spec.Process:
    """An OCI process object alone (``runc exec --process FILE``)."""
    return process_from(_Fields(value, "process"), interactive)


def process_from(fields: _Fields, interactive: bool) -> spec.Process:
    args = _strings(fields, "args")
    if not args:
        raise UserError("config.json: process.args is missing")
    cwd = _str(fields, "cwd") or ""
    cwd = spec.container_path(cwd, "config.json: process.cwd")
    user = fields.sub("user")
    uid, gid = _int(user, "uid") or 0, _int(user, "gid") or 0
    groups = cast(list[JSON], user.get("additionalGids", list, []))
    if not all(isinstance(g, int) for g in groups):
        raise UserError("config.json: process.user.additionalGids must be numbers")
    umask = _int(user, "umask")
    user.done()
    for key in ("apparmorProfile", "selinuxLabel"):
        if _str(fields, key):
            raise UserError(f"config.json: process.{key} is not supported by unionfs "
                            "(no LSM profile would be applied)")  # fmt: skip
    oom = _int(fields, "oomScoreAdj")
    if oom is not None and not -1000 <= oom <= 1000:
        raise UserError("config.json: process.oomScoreAdj must be between -1000 and 1000")
    process = spec.Process(
        args=args,
        env=_strings(fields, "env"),
        cwd=cwd,
        uid=uid,
        gid=gid,
        groups=tuple(cast(list[int], groups)),
        umask=umask,
        capabilities=_capabilities(fields),
        no_new_privileges=bool(fields.get("noNewPrivileges", bool, False)),
        rlimits=_rlimits(fields),
        oom_score_adj=oom,
        terminal=bool(fields.get("terminal", bool, False)),
        interactive=interactive,
    )
    fields.done()
    return process


def _capabilities(fields: _Fields) -> spec.Capabilities:
    """Absent sets are empty, as runc reads them: a bundle gets only what it lists."""
    sets = fields.sub("capabilities")
    where = sets.where
    result = spec.Capabilities(
        *(caps.numbers(_strings(sets, key), f"config.json: {where}.{key}")
          for key in ("bounding", "effective", "permitted", "inheritable", "ambient"))
    )  # fmt: skip
    sets.done()
    return result


def _rlimits(fields: _Fields) -> tuple[Rlimit, ...]:
    result = []
    for item in _objects(fields, "rlimits"):
        kind = _str(item, "type") or ""
        soft, hard = _int(item, "soft"), _int(item, "hard")
        if not hasattr(resource, kind) or not kind.startswith("RLIMIT_"):
            raise UserError(f"config.json: {item.where}.type {kind!r} is not a known rlimit")
        if soft is None or hard is None:
            raise UserError(f"config.json: {item.where} needs soft and hard")
        item.done()
        result.append(Rlimit(kind, soft, hard))
    return tuple(result)


def _mounts(top: _Fields) -> tuple[MountSpec, ...]:
    result = []
    for item in _objects(top, "mounts"):
        destination = _str(item, "destination") or ""
        kind = _str(item, "type") or ""
        source = _str(item, "source") or ""
        options = _strings(item, "options")
        item.done()
        if kind in ("", "none") and ("bind" in options or "rbind" in options):
            kind = "bind"
        if kind == "cgroup":
            kind = "cgroup"  # the container's own cgroups, read-only (as runc binds them)
        result.append(spec.check_mount(MountSpec(destination, kind, source, options),
                                       f"config.json: {item.where}"))  # fmt: skip
    return tuple(result)


def _namespaces(linux: _Fields) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The namespaces the container gets, and those of them joined by path."""
    found = set()
    joined = []
    for item in _objects(linux, "namespaces"):
        kind = _str(item, "type") or ""
        path = _str(item, "path")
        item.done()
        if path and kind != "user":
            if not path.startswith("/"):
                raise UserError(f"config.json: {item.where}.path must be absolute")
            joined.append((kind, path))
        if kind == "user":
            raise UserError("config.json: a user namespace is not supported yet "
                            "(rootless containers come later)")  # fmt: skip
        if kind not in spec.NAMESPACES:
            raise UserError(f"config.json: {item.where}.type {kind!r} is not a namespace "
                            f"unionfs creates ({', '.join(spec.NAMESPACES)})")  # fmt: skip
        if kind in found:
            raise UserError(f"config.json: {item.where}: a second {kind} namespace")
        found.add(kind)
    return tuple(sorted(found)), tuple(sorted(joined))


def _resources(fields: _Fields, mknod: bool = False) -> Resources:
    """*mknod*: the process may hold CAP_MKNOD, so creating (only) any node is allowed
    after the bundle's rules, as runc appends it (opening one still follows the rules)."""
    memory = fields.sub("memory")
    limit = _limit(memory, "limit")
    swap = _int(memory, "swap")  # memory + swap; -1: unlimited
    if swap is not None and swap != -1 and (swap <= 0 or (limit is not None and swap < limit)):
        raise UserError("config.json: linux.resources.memory.swap must be -1 or at least "
                        "the memory limit (it is memory + swap)")  # fmt: skip
    swappiness = _int(memory, "swappiness")
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise UserError("config.json: linux.resources.memory.swappiness must be 0 to 100")
    more: dict[str, object] = {
        "memory_swap": swap if swap != limit else None,
        "memory_swappiness": swappiness,
        "memory_reservation": _limit(memory, "reservation"),
        "oom_kill_disable": bool(memory.get("disableOOMKiller", bool, False)),
    }
    memory.done()
    cpu = fields.sub("cpu")
    quota, period = _limit(cpu, "quota"), _int(cpu, "period")
    if quota is not None and quota < 1000:
        raise UserError("config.json: linux.resources.cpu.quota must be at least 1000")
    if _int(cpu, "realtimePeriod") or _int(cpu, "realtimeRuntime"):
        raise UserError("config.json: linux.resources.cpu.realtime* is not supported")
    more.update(cpu_shares=_limit(cpu, "shares"), cpuset_cpus=_str(cpu, "cpus") or None,
                cpuset_mems=_str(cpu, "mems") or None)  # fmt: skip
    cpu.done()
    pids = fields.sub("pids")
    pids_limit = _limit(pids, "limit")
    pids.done()
    block = fields.sub("blockIO")
    weight = _int(block, "weight")
    if weight is not None and not 10 <= weight <= 1000:
        raise UserError("config.json: linux.resources.blockIO.weight must be 10 to 1000")
    more["blkio_weight"] = weight
    block.done()
    if "devices" in fields.data:
        devices = _devices(fields) + (devicepolicy.MKNOD_ANY if mknod else ())
    else:
        devices = devicepolicy.default_rules(mknod)
    fields.done()
    return Resources(
        memory=limit,
        cpu_quota=quota,
        cpu_period=(period or 100_000) if quota is not None else None,
        pids=pids_limit,
        devices=devices,
        **more,  # type: ignore[arg-type]
    )


def _limit(fields: _Fields, key: str) -> int | None:
    """A limit; 0 or negative (-1 in runc's specs) means none."""
    value = _int(fields, key)
    return value if value is not None and value > 0 else None


def _devices(fields: _Fields) -> tuple[DeviceRule, ...]:
    rules = []
    for item in _objects(fields, "devices"):
        allow = bool(item.get("allow", bool, False))
        kind = _str(item, "type") or "a"
        major, minor = _int(item, "major"), _int(item, "minor")
        access = _str(item, "access") or "rwm"
        item.done()
        if kind not in ("a", "c", "b") or not access or set(access) - set("rwm"):
            raise UserError(f"config.json: {item.where} is not a device rule")
        rules.append(DeviceRule(allow, kind, major, minor, access))
    return tuple(rules)


def load(bundle: str, name: str | None, remove: bool, interactive: bool = False) -> RunSpec:
    """Read ``BUNDLE/config.json`` (the only I/O here) and parse it."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise UserError(f"bundle {bundle!r} has no config.json") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    return parse(config, bundle, name, remove, interactive)
