"""RunSpec -> config.json (for ``unionfs run --runtime runc``): read back by our own OCI
parser, the bundle is the same container, so another runtime gets what we would do."""

from __future__ import annotations

import dataclasses
import os

from unionfs.runtime import bundle, oci, seccomp, spec

RULES = (
    seccomp.Rule(("clone",), "SCMP_ACT_ALLOW", 1, (seccomp.ArgCmp(0, 0x7E020000, 0,
                                                                  "SCMP_CMP_MASKED_EQ"),)),
    seccomp.Rule(("clone", "mount"), "SCMP_ACT_ERRNO", 1),
    seccomp.Rule(("read", "write"), "SCMP_ACT_ALLOW"),
)  # fmt: skip


def cli_spec(**flags: object) -> spec.RunSpec:
    values: dict[str, object] = {"rootfs": "/r", "command": ["sh", "-c", "x"], "host_env": {}}
    return spec.from_cli(**{**values, **flags})  # type: ignore[arg-type]


def test_a_cli_spec_survives_the_round_trip_through_config_json() -> None:
    given = cli_spec(memory="64m", cpus="0.5", pids="50", hostname="box", user="1:2",
                     env=["A=1"], workdir="/w", cap_add=["SYS_ADMIN"],
                     cap_drop=["KILL"], volumes=["/tmp:/mnt:ro"])  # fmt: skip
    config = bundle.config(given, "/merged", "unionfs-x")
    back = oci.parse(config, "/", None, False)
    assert back.rootfs == "/merged" and config["linux"]["cgroupsPath"] == "unionfs-x"  # type: ignore[index]
    process = dataclasses.replace(given.process, make_cwd=False, seccomp=back.process.seccomp)
    assert back.process == dataclasses.replace(process, interactive=False)
    assert back.resources == given.resources
    assert back.hostname == "box" and back.namespaces == given.namespaces
    assert back.masked_paths == given.masked_paths
    assert back.readonly_paths == given.readonly_paths
    dev = next(m for m in back.mounts if m.destination == "/dev")
    assert "nodev" not in dev.options  # runc makes the nodes in this tmpfs
    others = [m for m in given.mounts if m.destination != "/dev"]
    assert [m for m in back.mounts if m.destination != "/dev"] == others


def test_an_argument_rule_is_not_overridden_by_an_unconditional_denial() -> None:
    """libseccomp lets a syscall's unconditional rule win over its argument rules; ours
    tries the argument rules first. Where both deny, the unconditional one goes."""
    filt = seccomp.Filter("SCMP_ACT_ERRNO", 38, ("SCMP_ARCH_X86_64",), RULES)
    doc = bundle.seccomp(filt)
    rules = doc["syscalls"]
    assert isinstance(rules, list)
    assert [r["names"] for r in rules] == [["clone"], ["mount"], ["read", "write"]]
    assert rules[0]["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0,
                                 "op": "SCMP_CMP_MASKED_EQ"}]  # fmt: skip
    assert doc["defaultErrnoRet"] == 38
    permissive = bundle.seccomp(dataclasses.replace(filt, default_action="SCMP_ACT_ALLOW"))
    assert [r["names"] for r in permissive["syscalls"]][1] == ["clone", "mount"]  # type: ignore[index]


def test_privileged_lists_the_host_devices_it_binds() -> None:
    nodes = bundle.device_nodes(("/dev/null",))
    st = os.stat("/dev/null")
    assert nodes == [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3,
                      "fileMode": st.st_mode & 0o7777, "uid": 0, "gid": 0}]  # fmt: skip
