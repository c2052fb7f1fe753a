"""RunSpec -> steps: the order and content of a container's set-up, as pure data."""

from __future__ import annotations

import dataclasses

import pytest

from unionfs.runtime import plan, spec
from unionfs.runtime import plan as p
from unionfs.runtime.mountflags import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from unionfs.runtime.namespaces import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
)
from unionfs.runtime.spec import MountSpec

ROOT = "/state/c1/rootfs"


def cli(**kwargs: object) -> spec.RunSpec:
    args: dict[str, object] = {"rootfs": "/r", "command": ["sh", "-c", "x"], "host_env": {}}
    args.update(kwargs)
    return spec.from_cli(**args)  # type: ignore[arg-type]


def kinds(steps: tuple[p.Step, ...]) -> list[str]:
    return [type(s).__name__ for s in steps]


def index(steps: tuple[p.Step, ...], kind: type[p.Step]) -> int:
    return next(i for i, s in enumerate(steps) if isinstance(s, kind))


def test_the_helper_unshares_six_namespaces_then_forks_and_waits_for_its_cgroups() -> None:
    steps = plan.run_plan(cli(hostname="box"), ROOT)
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID
    assert steps[:6] == (p.Unshare(flags), p.Fork(), p.AwaitGo("cgroup"), p.NewSession(),
                         p.Unshare(CLONE_NEWCGROUP), p.MakeRprivate())  # fmt: skip


def test_mounts_happen_inside_the_root_before_the_pivot_then_the_process_is_set_up() -> None:
    steps = plan.run_plan(cli(hostname="box"), ROOT)
    pivot = index(steps, p.PivotRoot)
    assert steps[pivot] == p.PivotRoot(ROOT)
    mounts = [s for s in steps if isinstance(s, p.Mount)]
    assert all(s.root == ROOT for s in mounts)
    assert all(i < pivot for i, s in enumerate(steps) if isinstance(s, p.Mount | p.Symlink))
    proc = mounts[0]
    assert (proc.target, proc.fstype, proc.flags) == (
        "/proc",
        "proc",
        MS_NOSUID | MS_NOEXEC | MS_NODEV,
    )
    sysfs = next(s for s in mounts if s.fstype == "sysfs")
    assert sysfs.flags & MS_RDONLY
    devpts = next(s for s in mounts if s.fstype == "devpts")
    assert "newinstance" in devpts.data and "ptmxmode=0666" in devpts.data
    after = kinds(steps[pivot + 1 :])
    assert after[-9:] == [
        "SetHostname",
        "LoopbackUp",
        "Chdir",
        "DropBounding",
        "SetUser",
        "SetCapabilities",
        "NoNewPrivileges",
        "Seccomp",
        "Exec",
    ]
    assert steps[-1] == p.Exec(("sh", "-c", "x"), cli(hostname="box").process.env)


def test_a_minimal_dev_follows_the_dev_tmpfs() -> None:
    steps = plan.run_plan(cli(), ROOT)
    dev = next(i for i, s in enumerate(steps) if isinstance(s, p.Mount) and s.target == "/dev")
    binds = [s for s in steps[dev + 1 :] if isinstance(s, p.Mount) and s.flags == MS_BIND]
    names = {"null", "zero", "full", "random", "urandom", "tty"}
    assert {s.target for s in binds} == {f"/dev/{name}" for name in names}
    assert all(s.source == s.target and s.kind == "file" for s in binds)
    links = {s.link: s.target for s in steps if isinstance(s, p.Symlink)}
    assert links == {
        "/dev/fd": "/proc/self/fd",
        "/dev/stdin": "/proc/self/fd/0",
        "/dev/stdout": "/proc/self/fd/1",
        "/dev/stderr": "/proc/self/fd/2",
        "/dev/ptmx": "pts/ptmx",
    }


def test_masked_and_readonly_paths_come_after_the_pivot() -> None:
    steps = plan.run_plan(cli(), ROOT)
    pivot = index(steps, p.PivotRoot)
    assert index(steps, p.MaskPath) > pivot and index(steps, p.ReadonlyPath) > pivot
    assert p.MaskPath("/proc/kcore") in steps and p.ReadonlyPath("/proc/sys") in steps


def test_capabilities_are_dropped_before_the_user_changes_and_set_after() -> None:
    steps = plan.run_plan(cli(user="1000:100"), ROOT)
    order = kinds(steps)
    assert order.index("DropBounding") < order.index("SetUser") < order.index("SetCapabilities")
    assert p.SetUser(1000, 100, (), True) in steps


def test_without_a_network_namespace_loopback_is_left_alone() -> None:
    s = dataclasses.replace(cli(), namespaces=("ipc", "mount", "pid", "uts"))
    steps = plan.run_plan(s, ROOT)
    assert not any(isinstance(x, p.LoopbackUp) for x in steps)
    unshare = steps[0]
    assert isinstance(unshare, p.Unshare) and not unshare.flags & CLONE_NEWNET


def test_a_cgroup_namespace_is_unshared_only_after_joining_the_cgroups() -> None:
    s = dataclasses.replace(cli(), namespaces=("cgroup", "mount", "pid"))
    steps = plan.run_plan(s, ROOT)
    assert steps[2:5] == (p.AwaitGo("cgroup"), p.NewSession(), p.Unshare(CLONE_NEWCGROUP))
    first = steps[0]
    assert isinstance(first, p.Unshare) and not first.flags & CLONE_NEWCGROUP


def test_a_read_only_root_is_remounted_after_everything_is_mounted() -> None:
    steps = plan.run_plan(dataclasses.replace(cli(), readonly_root=True), ROOT)
    assert index(steps, p.ReadonlyRoot) > index(steps, p.ReadonlyPath)


def test_a_read_only_volume_is_bound_then_remounted_read_only() -> None:
    steps = plan.run_plan(cli(volumes=["/srv/data:/data:ro", "/srv/rw:/rw"]), ROOT)
    bind = next(s for s in steps if isinstance(s, p.Mount) and s.target == "/data")
    assert (bind.source, bind.flags, bind.kind) == ("/srv/data", MS_BIND, "auto")
    remount = steps[steps.index(bind) + 1]
    ro = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    assert remount == p.Remount(ROOT, "/data", ro)
    rw = next(s for s in steps if isinstance(s, p.Mount) and s.target == "/rw")
    assert rw.flags == MS_BIND | MS_REC
    assert not isinstance(steps[steps.index(rw) + 1], p.Remount)


def test_propagation_options_become_their_own_step() -> None:
    mount = MountSpec("/m", "tmpfs", "tmpfs", ("rprivate", "nodev"))
    assert plan.mount_steps(mount, ROOT) == [
        p.Mount(ROOT, "/m", "tmpfs", "tmpfs", MS_NODEV),
        p.Propagation(ROOT, "/m", MS_PRIVATE | MS_REC),
    ]


def test_workdir_is_created_before_the_pivot() -> None:
    steps = plan.run_plan(cli(workdir="/srv/app"), ROOT)
    assert index(steps, p.MakeDir) < index(steps, p.PivotRoot)
    assert p.Chdir("/srv/app") in steps


def test_ambient_capabilities_need_permitted_and_inheritable() -> None:
    caps = spec.Capabilities((5, 10), (5, 10), (5, 10), (10,), (5, 10))
    process = spec.Process(("true",), (), capabilities=caps)
    step = next(s for s in plan.process_steps(process) if isinstance(s, p.SetCapabilities))
    assert step.ambient == (10,)


def test_bundle_process_limits_are_applied_before_exec() -> None:
    process = spec.Process(
        ("true",),
        ("A=1",),
        cwd="/w",
        umask=0o22,
        oom_score_adj=100,
        rlimits=(spec.Rlimit("RLIMIT_NOFILE", 64, 64),),
        no_new_privileges=True,
    )
    assert plan.process_steps(process) == [
        p.SetRlimit("RLIMIT_NOFILE", 64, 64),
        p.OomScoreAdj(100),
        p.Umask(0o22),
        p.Chdir("/w"),
        p.SetUser(0, 0, (), False),
        p.NoNewPrivileges(),
        p.Exec(("true",), ("A=1",)),
    ]


def test_exec_joins_the_mount_namespace_last_then_forks() -> None:
    process = cli().process
    steps = plan.exec_plan(42, ("ipc", "mount", "network", "pid", "uts"), process)
    setns = [s for s in steps if isinstance(s, p.SetNs)]
    assert [s.path for s in setns] == [
        "/proc/42/ns/ipc",
        "/proc/42/ns/net",
        "/proc/42/ns/pid",
        "/proc/42/ns/uts",
        "/proc/42/ns/mnt",
    ]
    assert kinds(steps)[5:7] == ["Fork", "AwaitGo"]
    assert not any(isinstance(s, p.Mount | p.PivotRoot | p.Unshare) for s in steps)
    assert steps[-1] == p.Exec(process.args, process.env)


def test_plans_survive_the_trip_to_the_helper() -> None:
    steps = plan.run_plan(cli(volumes=["/a:/b:ro"], workdir="/w", user="5:6"), ROOT)
    assert plan.loads(plan.dumps(steps)) == steps


def test_steps_are_immutable() -> None:
    steps = plan.run_plan(cli(), ROOT)
    assert isinstance(steps, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        steps[0].flags = 0  # type: ignore[attr-defined]
