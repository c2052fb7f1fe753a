"""config.json -> RunSpec: what is supported, what is ignored, what is refused by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from unionfs.errors import UserError
from unionfs.runtime import caps, devices, oci
from unionfs.runtime.spec import DeviceRule, MountSpec, Rlimit

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


def test_minus_one_means_no_limit() -> None:
    s = parse(config(linux__resources={"memory": {"limit": -1}, "pids": {"limit": -1}}))
    assert s.resources.memory is None and s.resources.pids is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"hooks": {"prestart": [{"path": "/bin/true"}]}}, "hooks"),
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
            {"linux__namespaces": [{"type": "mount"}, {"type": "network", "path": "/run/n"}]},
            r"linux.namespaces\[1\].path",
        ),
        ({"linux__namespaces": [{"type": "pid"}]}, "must include a mount namespace"),
        ({"linux__resources": {"blockIO": {"weight": 10}}}, "linux.resources.blockIO"),
        (
            {"linux__resources": {"memory": {"limit": 1 << 25, "swap": 1 << 26}}},
            "linux.resources.memory.swap",
        ),
        (
            {"linux__resources": {"memory": {"disableOOMKiller": True}}},
            "linux.resources.memory.disableOOMKiller",
        ),
        ({"linux__resources": {"cpu": {"cpus": "0-1"}}}, "linux.resources.cpu.cpus"),
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
        ({"somethingNew": {"a": 1}}, "somethingNew"),
    ],
)
def test_unsupported_fields_are_refused_by_name(changes: dict[str, object], named: str) -> None:
    with pytest.raises(UserError, match=named):
        parse(config(**changes))


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
