"""The Cgroup interface against fake cgroup trees in a temp dir (v2, and the v1 layout of
this machine). The test plays the kernel's part: it fills a new cgroup directory with its
control files after ``create`` and empties it before ``remove``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unionfs.errors import UserError
from unionfs.runtime import cgroups, placement
from unionfs.runtime.cgroups import V1Cgroup, V2Cgroup
from unionfs.runtime.spec import DeviceRule, Resources

LIMITS = Resources(memory=32 << 20, cpu_quota=20_000, cpu_period=100_000, pids=10)
V2_FILES = {
    "cgroup.procs": "",
    "memory.max": "max",
    "memory.swap.max": "max",
    "cpu.max": "max 100000",
    "pids.max": "max",
    "cpu.stat": "usage_usec 1500\n",
    "memory.current": "4096",
    "memory.peak": "8192",
    "pids.current": "2",
    "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
}


def fake_v2(root: Path, delegated: str = "cpu memory pids") -> Path:
    """A unified hierarchy with us in /user.slice/me."""
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    own = root / "user.slice" / "me"
    own.mkdir(parents=True)
    (own / "cgroup.subtree_control").write_text(delegated + "\n")
    (own / "cgroup.procs").write_text(f"{os.getpid()}\n")
    return own


def kernel_fills(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (directory / name).write_text(text)


def kernel_empties(directory: Path) -> None:
    for entry in directory.iterdir():
        entry.unlink()


def test_v2_cgroup_goes_below_our_own(tmp_path: Path) -> None:
    own = fake_v2(tmp_path)
    cg = placement.locate("unionfs-x", LIMITS, str(tmp_path), "0::/user.slice/me\n")
    assert isinstance(cg, V2Cgroup)
    assert cg.path == str(own / "unionfs-x")
    assert not (own / "unionfs-x").exists()  # located, not created
    assert cg.record() == {"version": "2", "path": str(own / "unionfs-x")}


def test_v2_limits_pids_stats_and_removal(tmp_path: Path) -> None:
    own = fake_v2(tmp_path)
    cg = placement.locate("unionfs-x", LIMITS, str(tmp_path), "0::/user.slice/me\n")
    cg.create()
    mine = own / "unionfs-x"
    kernel_fills(mine, V2_FILES)
    cg.set_limits(LIMITS)
    assert (mine / "memory.max").read_text() == str(32 << 20)
    assert (mine / "memory.swap.max").read_text() == "0"
    assert (mine / "cpu.max").read_text() == "20000 100000"
    assert (mine / "pids.max").read_text() == "10"
    cg.add(4242)
    assert (mine / "cgroup.procs").read_text() == "4242"
    assert (own / "cgroup.procs").read_text() == f"{os.getpid()}\n"  # the parent: untouched
    assert (own / "cgroup.subtree_control").read_text() == "cpu memory pids\n"
    (mine / "pids.max").write_text("10\n")
    (mine / "memory.max").write_text(f"{32 << 20}\n")
    assert cg.stats() == cgroups.CgroupStats(
        cpu_ns=1_500_000,
        memory=4096,
        memory_peak=8192,
        memory_limit=32 << 20,
        pids=2,
        pids_limit=10,
        oom_kills=1,
    )
    (mine / "cgroup.procs").write_text("")
    kernel_empties(mine)
    cg.remove()
    assert not mine.exists() and own.exists()


def test_v2_controller_not_delegated_is_named_with_what_would_be_needed(tmp_path: Path) -> None:
    fake_v2(tmp_path, delegated="cpu")
    with pytest.raises(
        UserError,
        match=r"'memory' is not available below /user.slice/me "
        r"\(needed for --memory\): enable it in .*cgroup.subtree_control",
    ):
        placement.locate("unionfs-x", LIMITS, str(tmp_path), "0::/user.slice/me\n")
    fake = Resources(pids=5)
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    with pytest.raises(UserError, match=r"'pids' .*not enabled in this kernel"):
        placement.locate("unionfs-x", fake, str(tmp_path), "0::/user.slice/me\n")


def test_v2_without_limits_needs_no_controller(tmp_path: Path) -> None:
    fake_v2(tmp_path, delegated="")
    cg = placement.locate("unionfs-x", Resources(), str(tmp_path), "0::/user.slice/me\n")
    assert isinstance(cg, V2Cgroup)


def test_an_existing_cgroup_is_never_taken_over(tmp_path: Path) -> None:
    own = fake_v2(tmp_path)
    (own / "unionfs-x").mkdir()
    (own / "unionfs-x" / "cgroup.procs").write_text("1\n")
    cg = placement.locate("unionfs-x", LIMITS, str(tmp_path), "0::/user.slice/me\n")
    with pytest.raises(UserError, match="already exists and was not made by this container"):
        cg.create()
    assert (own / "unionfs-x" / "cgroup.procs").read_text() == "1\n"


def test_v2_device_rules_where_no_program_attaches_are_one_clear_error(tmp_path: Path) -> None:
    fake_v2(tmp_path)  # a plain directory: the kernel attaches no BPF program there
    cg = V2Cgroup(str(tmp_path / "user.slice" / "me" / "c"))
    cg.create()
    with pytest.raises(UserError, match="device rules are a BPF program"):
        cg.set_limits(Resources(devices=(DeviceRule(False),)))


def test_writing_a_missing_control_file_is_a_clear_error(tmp_path: Path) -> None:
    fake_v2(tmp_path)
    cg = placement.locate("unionfs-x", LIMITS, str(tmp_path), "0::/user.slice/me\n")
    cg.create()
    with pytest.raises(UserError, match=r"memory.max does not exist \(is the controller"):
        cg.set_limits(LIMITS)


# -- v1: this machine's layout --------------------------------------------------------------
SELF_V1 = """9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
"""


def fake_v1(
    root: Path, controllers: tuple[str, ...] = ("memory", "cpu", "cpuacct", "pids")
) -> None:
    for c in controllers:
        (root / c).mkdir()
        (root / c / "cgroup.procs").write_text("")
    if "memory" in controllers:
        (root / "memory" / "process_api" / "abc").mkdir(parents=True)
    (root / "unified").mkdir()
    (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")


def test_v1_cgroups_go_below_our_own_in_each_hierarchy(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    cg = placement.locate("unionfs-x", LIMITS, str(tmp_path), SELF_V1)
    assert isinstance(cg, V1Cgroup)
    assert cg.dirs == {
        "memory": f"{tmp_path}/memory/process_api/abc/unionfs-x",
        "cpu": f"{tmp_path}/cpu/unionfs-x",
        "cpuacct": f"{tmp_path}/cpuacct/unionfs-x",
        "pids": f"{tmp_path}/pids/unionfs-x",
    }


def test_v1_limits_and_stats(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    cg = placement.locate("unionfs-x", LIMITS, str(tmp_path), SELF_V1)
    assert isinstance(cg, V1Cgroup)
    cg.create()
    d = {k: Path(v) for k, v in cg.dirs.items()}
    kernel_fills(
        d["memory"],
        {
            "memory.limit_in_bytes": "",
            "memory.memsw.limit_in_bytes": "",
            "cgroup.procs": "",
            "memory.usage_in_bytes": "100",
            "memory.max_usage_in_bytes": "200",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        },
    )
    kernel_fills(d["cpu"], {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "", "cgroup.procs": ""})
    kernel_fills(d["cpuacct"], {"cpuacct.usage": "123456", "cgroup.procs": ""})
    kernel_fills(d["pids"], {"pids.max": "", "pids.current": "3", "cgroup.procs": ""})
    cg.set_limits(LIMITS)
    assert (d["memory"] / "memory.limit_in_bytes").read_text() == str(32 << 20)
    assert (d["memory"] / "memory.memsw.limit_in_bytes").read_text() == str(32 << 20)
    assert (d["cpu"] / "cpu.cfs_quota_us").read_text() == "20000"
    assert (d["cpu"] / "cpu.cfs_period_us").read_text() == "100000"
    assert (d["pids"] / "pids.max").read_text() == "10"
    cg.add(77)
    assert all((p / "cgroup.procs").read_text() == "77" for p in d.values())
    stats = cg.stats()
    assert (stats.cpu_ns, stats.memory, stats.memory_peak, stats.memory_limit) == (
        123456,
        100,
        200,
        32 << 20,
    )
    assert (stats.pids, stats.pids_limit, stats.oom_kills) == (3, 10, 2)
    assert cgroups.from_record(cg.record()).stats() == stats
    for p in d.values():
        (p / "cgroup.procs").write_text("")
        kernel_empties(p)
    cg.remove()
    assert not any(p.exists() for p in d.values())
    assert (tmp_path / "memory" / "process_api" / "abc").is_dir()


def test_v1_missing_controller_is_named(tmp_path: Path) -> None:
    fake_v1(tmp_path, controllers=("memory", "cpu", "cpuacct"))
    with pytest.raises(
        UserError,
        match=r"controller 'pids' is not available \(needed for "
        r"--pids\): no v1 hierarchy mounted at .*/pids",
    ):
        placement.locate("unionfs-x", LIMITS, str(tmp_path), SELF_V1)
    # not needed: simply not joined
    cg = placement.locate("unionfs-x", Resources(memory=1 << 25), str(tmp_path), SELF_V1)
    assert isinstance(cg, V1Cgroup) and "pids" not in cg.dirs


def test_v1_device_rules_deny_then_allow(tmp_path: Path) -> None:
    fake_v1(tmp_path, controllers=("memory", "cpu", "cpuacct", "pids", "devices"))
    rules = (
        DeviceRule(False),
        DeviceRule(True, "c", 1, 3, "rwm"),
        DeviceRule(True, "c", 136, None, "rw"),
    )
    self_cgroup = SELF_V1.replace("0::/\n", "") + "5:devices:/\n"  # v1 alone
    cg = placement.locate("unionfs-x", Resources(devices=rules), str(tmp_path), self_cgroup)
    assert isinstance(cg, V1Cgroup) and "unified" not in cg.dirs
    cg.create()
    devices = Path(cg.dirs["devices"])
    written: list[str] = []
    kernel_fills(devices, {"devices.deny": "", "devices.allow": ""})
    real_write = cgroups._write

    def record(path: str, value: str) -> None:
        written.append(f"{os.path.basename(path)} {value}")
        real_write(path, value)

    cgroups._write = record  # type: ignore[assignment]
    try:
        cg.set_limits(Resources(devices=rules))
    finally:
        cgroups._write = real_write  # type: ignore[assignment]
    assert written == ["devices.deny a", "devices.allow c 1:3 rwm", "devices.allow c 136:* rw"]


def test_a_failed_create_removes_only_what_it_made(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    (tmp_path / "pids" / "unionfs-x").mkdir()  # someone else's
    cg = placement.locate("unionfs-x", LIMITS, str(tmp_path), SELF_V1)
    with pytest.raises(UserError, match="already exists"):
        cg.create()
    assert (tmp_path / "pids" / "unionfs-x").is_dir()
    assert not (tmp_path / "memory" / "process_api" / "abc" / "unionfs-x").exists()
    assert not (tmp_path / "cpu" / "unionfs-x").exists()


def test_own_cgroups_reads_proc_self_cgroup() -> None:
    v1, v2 = placement.own_cgroups(SELF_V1 + "3:cpu,cpuacct:/x\n")
    assert v1["memory"] == "/process_api/abc" and v1["pids"] == "/" and v2 == "/"
    assert "name=systemd" not in v1


def test_hybrid_device_rules_also_go_to_the_v2_hierarchy(tmp_path: Path) -> None:
    """Where v1 and v2 are mounted side by side, the rules are v1 lines and a BPF program
    on a v2 cgroup too (the kernel checks both); without device rules, no v2 cgroup."""
    fake_v1(tmp_path, controllers=("memory", "cpu", "cpuacct", "pids", "devices"))
    self_cgroup = SELF_V1 + "5:devices:/\n"
    cg = placement.locate("unionfs-x", Resources(devices=(DeviceRule(False),)), str(tmp_path),
                          self_cgroup)  # fmt: skip
    assert isinstance(cg, V1Cgroup)
    assert cg.dirs["unified"] == f"{tmp_path}/unified/unionfs-x"
    plain = placement.locate("unionfs-x", Resources(), str(tmp_path), self_cgroup)
    assert isinstance(plain, V1Cgroup) and "unified" not in plain.dirs
