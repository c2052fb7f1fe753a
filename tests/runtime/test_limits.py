"""cgroup limits on real containers: memory (an OOM kill, exit 137), pids (a fork bomb
stops at the limit), CPU quota (measured from the cgroup's usage), and ``stats`` while it
runs. The ``runtime`` fixture asserts that no cgroup, mount or process remains."""

from __future__ import annotations

import re
import time
from pathlib import Path

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
    most, failures = 0, 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        most = max(most, int((pids_dir / "pids.current").read_text()))
        failures = int((pids_dir / "pids.events").read_text().split()[1])
        time.sleep(0.01)
    assert 2 <= most <= 10 and failures > 0  # forks were refused at the limit
    assert runtime("kill", c).returncode == 0
    _, err = proc.communicate(timeout=30)
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
    cgroup = cgroups.from_record(dict(state.cgroup))
    first, t0 = cgroup.stats().cpu_ns, time.monotonic()
    time.sleep(2)
    last, t1 = cgroup.stats().cpu_ns, time.monotonic()
    assert first is not None and last is not None
    share = (last - first) / 1e9 / (t1 - t0)
    assert 0.1 <= share <= 0.35, share
    stats = runtime("stats", "--no-stream", c)
    assert stats.returncode == 0, stats.stderr
    header, row = stats.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "CPU", "%"]  # podman's columns
    cpu = re.search(r"([\d.]+)%", row)
    assert cpu is not None and 5 <= float(cpu.group(1)) <= 40, row
    assert c in row and "/ 67.11MB" in row and "1 " in row, row  # 64 MiB in podman's units
    assert runtime("kill", c).returncode == 0
    assert proc.wait(timeout=30) == 137
