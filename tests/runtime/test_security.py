"""Privileges from the CLI's flags, pure: no_new_privs on by default, docker's capabilities
with --cap-add/--cap-drop (ALL too), --privileged, --security-opt as podman takes it; and
where the plan puts the filter (after no_new_privs, or while still root without it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime import bpfvm
from unionfs.errors import UserError
from unionfs.runtime import caps, devices, plan, seccompbpf, security, spec
from unionfs.runtime import plan as p

NR = seccompbpf.table("SCMP_ARCH_X86_64")


def cli(**kwargs: object) -> spec.RunSpec:
    args: dict[str, object] = {"rootfs": "/r", "command": ["sh"], "host_env": {}}
    args.update(kwargs)
    return spec.from_cli(**args)  # type: ignore[arg-type]


def names(s: spec.RunSpec) -> set[str]:
    assert s.process.capabilities is not None
    return {caps.NAMES[n] for n in s.process.capabilities.bounding}


def test_by_default_no_new_privs_the_default_filter_and_dockers_capabilities() -> None:
    s = cli()
    assert s.process.no_new_privileges
    assert s.process.seccomp is not None and s.process.seccomp.default_errno == 38
    assert names(s) == set(caps.DEFAULT)
    assert "CAP_MKNOD" not in names(s) and "CAP_SYS_ADMIN" not in names(s)
    assert s.resources.devices == devices.default_rules() and not s.privileged


@pytest.mark.parametrize(
    ("add", "drop", "expected"),
    [
        (["NET_ADMIN"], [], set(caps.DEFAULT) | {"CAP_NET_ADMIN"}),
        ([], ["CAP_CHOWN", "kill"], set(caps.DEFAULT) - {"CAP_CHOWN", "CAP_KILL"}),
        ([], ["ALL"], set()),
        (["KILL"], ["ALL"], {"CAP_KILL"}),
        (["ALL"], ["SYS_ADMIN"], {caps.NAMES[n] for n in caps.own_bounding()} - {"CAP_SYS_ADMIN"}),
        (["chown,kill"], ["all"], {"CAP_CHOWN", "CAP_KILL"}),
    ],
)
def test_cap_add_and_cap_drop_as_podman(
    add: list[str], drop: list[str], expected: set[str]
) -> None:
    assert names(cli(cap_add=add, cap_drop=drop)) == expected


def test_a_non_root_user_holds_none_but_keeps_the_bounding_set() -> None:
    s = cli(user="1000", cap_add=["NET_ADMIN"])
    assert s.process.capabilities is not None
    assert s.process.capabilities.effective == () and "CAP_NET_ADMIN" in names(s)


def test_unknown_capabilities_and_options_are_one_clear_error() -> None:
    with pytest.raises(UserError, match="--cap-add: unknown capability 'FLY'"):
        cli(cap_add=["FLY"])
    with pytest.raises(UserError, match="--security-opt 'label=type:x' is not supported"):
        cli(security_opt=["label=type:x"])
    with pytest.raises(UserError, match="expected true or false"):
        cli(security_opt=["no-new-privileges=maybe"])


def test_no_new_privileges_false_and_seccomp_unconfined() -> None:
    s = cli(security_opt=["no-new-privileges=false", "seccomp=unconfined"])
    assert not s.process.no_new_privileges and s.process.seccomp is None
    assert cli(security_opt=["no-new-privileges"]).process.no_new_privileges
    assert cli(security_opt=["label=disable", "apparmor=unconfined"]).process.seccomp is not None


def test_seccomp_file_is_read_once_into_the_spec(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))  # fmt: skip
    s = cli(security_opt=[f"seccomp={profile}"])
    profile.unlink()  # saved with the container: start needs the file no more
    assert s.process.seccomp is not None
    program = seccompbpf.compile_filter(s.process.seccomp)
    assert bpfvm.run(program, NR["mkdir"]) == bpfvm.errno(13)
    assert bpfvm.run(program, NR["mount"]) == bpfvm.ALLOW
    with pytest.raises(UserError, match=r"seccomp profile /nonexistent\.json: No such file"):
        cli(security_opt=["seccomp=/nonexistent.json"])


def test_the_filter_follows_the_capabilities() -> None:
    s = cli(cap_add=["SYS_ADMIN"])
    assert s.process.seccomp is not None
    program = seccompbpf.compile_filter(s.process.seccomp)
    assert bpfvm.run(program, NR["mount"]) == bpfvm.ALLOW


def test_privileged_is_all_capabilities_devices_and_paths_and_no_filter() -> None:
    s = cli(privileged=True)
    assert names(s) == {caps.NAMES[n] for n in caps.own_bounding()}
    assert s.process.seccomp is None and not s.process.no_new_privileges
    assert s.resources.devices == devices.ALLOW_ALL and s.privileged
    assert s.masked_paths == () and s.readonly_paths == ()
    sysfs = next(m for m in s.mounts if m.type == "sysfs")
    assert "ro" not in sysfs.options
    assert "nodev" not in next(m for m in s.mounts if m.destination == "/dev").options


def test_cap_mknod_allows_creating_any_node_and_opening_none() -> None:
    assert cli(cap_add=["MKNOD"]).resources.devices == devices.default_rules(mknod=True)


def test_the_filter_comes_last_with_no_new_privs_and_while_root_without() -> None:
    order = [type(s).__name__ for s in plan.run_plan(cli(user="1000"), "/root")]
    assert order[-3:] == ["NoNewPrivileges", "Seccomp", "Exec"]
    loose = cli(user="1000", security_opt=["no-new-privileges=false"])
    order = [type(s).__name__ for s in plan.run_plan(loose, "/root")]
    assert "NoNewPrivileges" not in order
    assert order.index("Seccomp") < order.index("SetUser")


def test_exec_sets_up_its_own_session_and_terminal() -> None:
    process = cli(tty=True, interactive=True).process
    steps = plan.exec_plan(42, ("mount", "pid"), process)
    kinds = [type(s).__name__ for s in steps]
    assert kinds[2:6] == ["Fork", "AwaitGo", "NewSession", "Terminal"]
    assert p.Terminal(0, console=False) in steps
    run = plan.run_plan(cli(tty=True), "/root")
    assert p.Terminal(0, console=True) in run
    assert [type(s).__name__ for s in run].index("Terminal") > [
        type(s).__name__ for s in run].index("PivotRoot")  # fmt: skip


def test_the_seccomp_program_survives_the_plans_json() -> None:
    steps = plan.run_plan(cli(), "/root")
    assert plan.loads(plan.dumps(steps)) == steps
    assert security.kernel_version() >= (4, 8)
