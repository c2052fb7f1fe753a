"""config.json -> RunSpec: what is supported, what is ignored, what is refused by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from unionfs.errors import UserError
from unionfs.runtime import caps, devices, oci
from unionfs.runtime.run import with_standard_devices
from unionfs.runtime.spec import DeviceRule, MountSpec, Rlimit
from unionfs.runtime.steps import Hook

# What `runc spec` (1.1.5) writes, with a command and a host name.
RUNC_SPEC: dict[str, object] = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            key: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            for key in ("bounding", "effective", "permitted", "ambient")
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/sys"],
    },
}


def config(**changes: object) -> dict[str, object]:
    """RUNC_SPEC with dotted-path changes; None deletes the key."""
    result = copy.deepcopy(RUNC_SPEC)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node: dict[str, object] = result
        for key in parents:
            node = node.setdefault(key, {})  # type: ignore[assignment]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return result


def parse(cfg: dict[str, object]) -> oci.RunSpec:
    return oci.parse(cfg, "/bundles/b", None, False)


def test_runc_default_spec_is_understood() -> None:
    s = parse(config())
    assert s.rootfs == "/bundles/b/rootfs" and s.readonly_root and s.hostname == "runc"
    assert s.process.args == ("sh",) and s.process.no_new_privileges
    assert s.process.rlimits == (Rlimit("RLIMIT_NOFILE", 1024, 1024),)
    assert s.process.capabilities is not None
    kept = caps.numbers(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"], "t")
    assert s.process.capabilities.bounding == kept
    assert s.process.capabilities.inheritable == ()  # absent: empty, as runc reads it
    assert s.namespaces == ("ipc", "mount", "network", "pid", "uts")
    assert s.resources.devices == (DeviceRule(False, "a", None, None, "rwm"),)
    assert s.resources.controllers() == ("devices",)
    # the cgroup mount shows the container's own cgroups (as runc binds them)
    assert [(m.destination, m.type) for m in s.mounts][-1] == ("/sys/fs/cgroup", "cgroup")
    assert s.process.seccomp is None  # none asked for: none, as runc
    assert s.masked_paths == ("/proc/acpi", "/proc/kcore", "/sys/firmware")


def test_limits_are_read() -> None:
    s = parse(
        config(
            linux__resources={
                "memory": {"limit": 33554432, "reservation": 1000, "swap": 33554432},
                "cpu": {"quota": 20000, "period": 100000, "shares": 512},
                "pids": {"limit": 10},
            }
        )
    )
    assert (s.resources.memory, s.resources.cpu_quota, s.resources.cpu_period) == (
        32 << 20,
        20000,
        100000,
    )
    assert s.resources.pids == 10
    # no device rules given: runc's default (deny all, the standard set allowed)
    assert s.resources.devices == devices.default_rules()


def test_device_rules_read_over_deny_all_with_the_standard_set_on_top() -> None:
    """As runc's: its rules start from "deny all" and its default devices come after the
    bundle's (cgroup v1 would otherwise start from the parent's "a *:* rwm")."""
    only = DeviceRule(False, "c", 1, 1, "rwm")
    s = parse(config(linux__resources={"devices": [{"allow": False, "type": "c", "major": 1,
                                                     "minor": 1, "access": "rwm"}]}))
    assert s.resources.devices == (only,)
    applied = with_standard_devices(s.resources).devices
    assert applied == (DeviceRule(False, "a"), only, *devices.STANDARD)
    # a list that starts from "a" (deny or allow all) is not given a second base
    assert with_standard_devices(parse(config()).resources).devices == (
        DeviceRule(False, "a", None, None, "rwm"), *devices.STANDARD)  # fmt: skip


def test_cap_mknod_lets_the_bundle_create_any_node_as_runc() -> None:
    with_mknod = {k: ["CAP_MKNOD"] for k in ("bounding", "effective", "permitted")}
    s = parse(config(process__capabilities=with_mknod))
    assert s.resources.devices == (DeviceRule(False, "a"), *devices.MKNOD_ANY)
    s = parse(config(process__capabilities=with_mknod, linux__resources=None))
    assert s.resources.devices == devices.default_rules(mknod=True)


def test_minus_one_means_no_limit() -> None:
    s = parse(config(linux__resources={"memory": {"limit": -1}, "pids": {"limit": -1}}))
    assert s.resources.memory is None and s.resources.pids is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"hooks": {"prestart": [{"path": "true"}]}}, r"hooks.prestart\[0\].path"),
        ({"hooks": {"preStart": [{"path": "/bin/true"}]}}, "hooks.preStart"),
        ({"hooks": {"poststop": [{"path": "/x", "timeout": 0}]}}, "timeout"),
        ({"linux__seccomp": {"defaultAction": "SCMP_ACT_NOTIFY"}}, "SCMP_ACT_NOTIFY"),
        ({"linux__seccomp": {"listenerPath": "/run/x.sock"}}, "listenerPath"),
        ({"process__apparmorProfile": "docker-default"}, "process.apparmorProfile"),
        ({"process__selinuxLabel": "system_u:x"}, "process.selinuxLabel"),
        (
            {"linux__uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]},
            "linux.uidMappings",
        ),
        ({"linux__namespaces": [{"type": "mount"}, {"type": "user"}]}, "user namespace"),
        (
            {"linux__namespaces": [{"type": "mount"}, {"type": "network", "path": "run/n"}]},
            r"linux.namespaces\[1\].path must be absolute",
        ),
        ({"linux__namespaces": [{"type": "pid"}]}, "must include a mount namespace"),
        (
            {"linux__resources": {"memory": {"limit": 1 << 26, "swap": 1 << 25}}},
            "linux.resources.memory.swap must be -1 or at least the memory limit",
        ),
        ({"linux__resources": {"memory": {"swappiness": 101}}}, "swappiness must be 0 to 100"),
        ({"linux__resources": {"blockIO": {"weight": 5}}}, "blockIO.weight must be 10 to 1000"),
        ({"linux__resources": {"blockIO": {"throttleReadBpsDevice": [{"major": 8}]}}},
         "linux.resources.blockIO.throttleReadBpsDevice"),
        ({"linux__resources": {"cpu": {"realtimeRuntime": 10}}}, "linux.resources.cpu.realtime"),
        (
            {"linux__resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}},
            "linux.resources.hugepageLimits",
        ),
        (
            {"linux__devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]},
            "linux.devices",
        ),
        ({"linux__rootfsPropagation": "shared"}, "rootfsPropagation"),
        ({"linux__personality": {"domain": "LINUX32"}}, "linux.personality"),
        ({"process__rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}, "RLIMIT_BOGUS"),
        ({"process__capabilities": {"bounding": ["CAP_FLY"]}}, "CAP_FLY"),
        ({"process__user": {"uid": 0, "gid": 0, "username": "root"}}, "process.user.username"),
        ({"process__args": None}, "process.args is missing"),
        ({"process__cwd": "relative"}, "process.cwd"),
        ({"root": None}, "root.path is missing"),
        ({"ociVersion": "2.0.0"}, "ociVersion"),
        ({"windows": {"layerFolders": ["x"]}}, "windows"),
        (
            {"mounts": [{"destination": "/data", "type": "ext4", "source": "/dev/sda1"}]},
            r"mounts\[0\]: mount type 'ext4'",
        ),
        (
            {
                "mounts": [
                    {"destination": "/p", "type": "proc", "source": "proc", "options": ["nosiud"]}
                ]
            },
            "unknown mount option 'nosiud'",
        ),
        (
            {"mounts": [{"destination": "/p", "type": "proc", "source": "proc", "extra": 1}]},
            r"mounts\[0\].extra",
        ),
        ({"hostname": "x", "linux__namespaces": [{"type": "mount"}]}, "uts namespace"),
        ({"process__terminal": "yes"}, "process.terminal has the wrong type"),
        ({"vm": {"hypervisor": {"path": "/x"}}}, "vm is not supported"),
        ({"linux__intelRdt": {"closID": "x"}}, "linux.intelRdt is not supported"),
        ({"process__user": {"uid": 0, "somethingNew": 1}}, "process.user.somethingNew"),
    ],
)
def test_unsupported_fields_are_refused_by_name(changes: dict[str, object], named: str) -> None:
    with pytest.raises(UserError, match=named):
        parse(config(**changes))


def test_a_property_the_runtime_spec_does_not_define_is_an_extension_and_ignored() -> None:
    """runtime-spec: "MUST NOT generate an error if they encounter an unknown property"
    (where it lists every property of an object: the top level, process, linux, ...)."""
    s = parse(config(somethingNew={"a": 1}, process__x_vendor=1, linux__x_vendor=[1]))
    assert s.process.args == ("sh",)


def test_safe_fields_are_ignored_and_empty_ones_accepted() -> None:
    s = parse(
        config(
            annotations={"org.example": "x"},
            linux__cgroupsPath="/x/y",
            process__consoleSize={"height": 24, "width": 80},
            hooks={},
            linux__seccomp=None,
            linux__sysctl={"net.ipv4.ip_forward": "1"},
        )
    )
    assert s.sysctl == (("net.ipv4.ip_forward", "1"),)


def test_hooks_namespace_paths_cgroups_path_and_annotations_are_read() -> None:
    s = parse(
        config(
            hooks={"createRuntime": [{"path": "/bin/hook", "args": ["hook", "a"],
                                      "env": ["X=1"], "timeout": 5}],
                   "poststop": [{"path": "/bin/true"}]},
            linux__namespaces=[{"type": "mount"}, {"type": "uts"},
                               {"type": "network", "path": "/run/netns/x"}],
            linux__cgroupsPath="/machine/c1",
            annotations={"org.example": "x"},
        )
    )
    assert s.hooks.of("createRuntime") == (Hook("/bin/hook", ("hook", "a"), ("X=1",), 5),)
    assert s.hooks.poststop == (Hook("/bin/true"),) and s.hooks.prestart == ()
    assert s.namespaces == ("mount", "network", "uts")
    assert s.namespace_paths == (("network", "/run/netns/x"),)
    assert s.cgroups_path == "/machine/c1"
    assert s.annotations == (("org.example", "x"),)


def test_runcs_other_resources_are_read() -> None:
    s = parse(config(linux__resources={
        "memory": {"limit": 1 << 26, "swap": 1 << 27, "reservation": 1 << 25, "swappiness": 10,
                   "disableOOMKiller": True, "kernel": -1},
        "cpu": {"shares": 512, "cpus": "0", "mems": "0"}, "blockIO": {"weight": 300}}))  # fmt: skip
    r = s.resources
    assert (r.memory, r.memory_swap, r.memory_reservation) == (1 << 26, 1 << 27, 1 << 25)
    assert (r.memory_swappiness, r.oom_kill_disable) == (10, True)
    assert (r.cpu_shares, r.cpuset_cpus, r.cpuset_mems, r.blkio_weight) == (512, "0", "0", 300)
    assert set(r.controllers()) == {"memory", "cpu", "cpuset", "blkio", "devices"}
    same = parse(config(linux__resources={"memory": {"limit": 1 << 26, "swap": 1 << 26}}))
    assert same.resources.memory_swap is None  # swap == limit: none beyond it, our default


def test_bind_mounts_from_type_none_with_bind_option() -> None:
    s = parse(
        config(
            mounts=[
                {
                    "destination": "/data",
                    "type": "none",
                    "source": "/srv",
                    "options": ["rbind", "ro"],
                }
            ]
        )
    )
    assert s.mounts == (MountSpec("/data", "bind", "/srv", ("rbind", "ro")),)


def test_load_reads_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config()))
    assert oci.load(str(tmp_path), "n", True).name == "n"
    with pytest.raises(UserError, match=r"has no config\.json"):
        oci.load(str(tmp_path / "missing"), None, False)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        oci.load(str(tmp_path), None, False)
