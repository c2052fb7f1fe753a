"""cgroup limits on real containers: memory (an OOM kill, exit 137), pids (a fork bomb
stops at the limit), CPU quota (measured from the cgroup's usage), and ``stats`` while it
runs. The ``runtime`` fixture asserts that no cgroup, mount or process remains. Limits
are shown by the kernel's own events (a fork refused, a period throttled), so a busy
machine cannot make them fail: it only slows the process down."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from patience import scaled, wait_until

from runtime.containerutil import Runtime, unique_name
from unionfs.runtime import cgroups


def test_past_the_memory_limit_the_process_is_oom_killed(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    c = unique_name()
    done = runtime(
        "run", "--name", c, "--memory", "32m", "--rootfs", str(busybox_rootfs),
        "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1",
    )  # fmt: skip
    assert done.returncode == 137, done.stderr
    seen = runtime("inspect", c, "--format", "{{.State.Status}} {{.State.ExitCode}} "
                   "{{.State.OOMKilled}}").stdout  # fmt: skip
    assert seen == "exited 137 true\n", seen
    assert runtime("rm", c).returncode == 0
    assert runtime("ps", "-a").stdout.count("\n") == 1


def test_a_fork_bomb_stops_at_the_pids_limit(runtime: Runtime, busybox_rootfs: Path) -> None:
    c = unique_name()
    bomb = "f() { f | f & }; f; exec sleep 60"  # PID 1 ends up as sleep, forking no more
    proc = runtime.start(
        "run", "--rm", "--name", c, "--pids", "10", "--rootfs", str(busybox_rootfs),
        "sh", "-c", bomb,
    )  # fmt: skip
    state = runtime.wait_running(c, proc)
    pids_dir = Path(dict(state.cgroup)["pids"])
    most = 0

    def refused() -> bool:
        nonlocal most
        most = max(most, int((pids_dir / "pids.current").read_text()))
        return int((pids_dir / "pids.events").read_text().split()[1]) > 0

    assert wait_until(refused, 60, interval=0.005), "no fork was refused at the limit"
    # A refusal is the kernel's word that the count stood at the limit. What the samples
    # saw is only a bound: on a busy machine the whole bomb may have come and gone before
    # the first one (then only PID 1 is left), so no lower bound is promised.
    assert (pids_dir / "pids.max").read_text() == "10\n"
    assert 1 <= most <= 10
    assert runtime("kill", c).returncode == 0
    _, err = proc.communicate(timeout=scaled(30))
    assert proc.returncode == 137 and "can't fork" in err


def test_a_busy_loop_under_cpus_0_2_gets_a_fifth_of_a_cpu_and_stats_show_it(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    c = unique_name()
    proc = runtime.start(
        "run", "--rm", "--name", c, "--cpus", "0.2", "--memory", "64m",
        "--rootfs", str(busybox_rootfs), "sh", "-c", "while :; do :; done",
    )  # fmt: skip
    state = runtime.wait_running(c, proc)
    record = dict(state.cgroup)
    quota, throttled = cpu_quota_files(record)
    assert quota() == 0.2
    # The loop runs into its quota: the kernel throttles the cgroup (however busy the
    # machine, the loop gets its 20 ms of a period sooner or later).
    assert wait_until(lambda: throttled() > 0, 60), "the cgroup was never throttled"
    cgroup = cgroups.from_record(record)
    first, t0 = cgroup.stats().cpu_ns, time.monotonic()
    time.sleep(2)  # a window to measure over, not a wait: a busy machine only lowers the share
    last, t1 = cgroup.stats().cpu_ns, time.monotonic()
    assert first is not None and last is not None
    share = (last - first) / 1e9 / (t1 - t0)
    assert 0 < share <= 0.35, share
    stats = runtime("stats", "--no-stream", c)
    assert stats.returncode == 0, stats.stderr
    header, row = stats.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "CPU", "%"]  # podman's columns
    cpu = re.search(r"([\d.]+)%", row)
    assert cpu is not None and 0 < float(cpu.group(1)) <= 40, row
    assert c in row and "/ 67.11MB" in row and "1 " in row, row  # 64 MiB in podman's units
    assert runtime("kill", c).returncode == 0
    assert proc.wait(timeout=scaled(30)) == 137


def cpu_quota_files(record: dict[str, str]) -> tuple[Callable[[], float], Callable[[], int]]:
    """(the CPU quota as a share of one CPU, the count of throttled periods) of a cgroup."""
    if record["version"] == "1":
        cpu = Path(record["cpu"])
        return (lambda: int((cpu / "cpu.cfs_quota_us").read_text())
                / int((cpu / "cpu.cfs_period_us").read_text()),
                lambda: _keyed(cpu / "cpu.stat", "nr_throttled"))  # fmt: skip
    path = Path(record["path"])

    def quota() -> float:
        limit, period = (path / "cpu.max").read_text().split()
        return int(limit) / int(period)

    return quota, lambda: _keyed(path / "cpu.stat", "nr_throttled")


def _keyed(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    raise AssertionError(f"{path} has no {key}")
