"""Exit codes, signals, exec and clean-up of real containers: whatever ends them, the
``runtime`` fixture then asserts that no mount, process or cgroup remains."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from patience import scaled, wait_until

from runtime.containerutil import Runtime, runs_below, unique_name
from unionfs.runtime.state import is_alive

DEFAULT_STOP_TIMEOUT = 10.0  # what `run` waits without --stop-timeout


def test_exit_codes_propagate(runtime: Runtime, busybox_rootfs: Path) -> None:
    done = runtime("run", "--rm", "--rootfs", str(busybox_rootfs), "sh", "-c", "exit 3")
    assert done.returncode == 3


def test_command_not_found_is_127_with_a_message(runtime: Runtime, busybox_rootfs: Path) -> None:
    done = runtime("run", "--rm", "--rootfs", str(busybox_rootfs), "no-such-command")
    assert done.returncode == 127
    if runtime.oci_runtime == "unionfs":
        message = "exec: \"no-such-command\": executable file not found in $PATH"
        assert done.stderr == f"unionfs: {message}\n"
    else:  # the runtime's own words, then ours
        assert 'exec: "no-such-command": executable file not found in $PATH' in done.stderr
        assert done.stderr.endswith(f"unionfs: {runtime.oci_runtime} create failed\n")


def test_sigterm_to_run_reaches_the_process(runtime: Runtime, busybox_rootfs: Path) -> None:
    c = unique_name()
    proc = runtime.start(
        "run", "--rm", "--name", c, "--rootfs", str(busybox_rootfs), "sh", "-c",
        "trap 'echo got TERM; exit 7' TERM; echo ready; sleep 60 & wait",
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=scaled(30))
    assert proc.returncode == 7 and out == "got TERM\n"


def test_a_pid_1_that_ignores_sigterm_is_killed_after_the_stop_timeout(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    c = unique_name()
    proc = runtime.start(
        "run", "--rm", "--name", c, "--stop-timeout", "0.5", "--rootfs", str(busybox_rootfs),
        "sleep", "60",
    )  # fmt: skip
    state = runtime.wait_running(c, proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    # Timed to the death of the container's process, not to the runtime's exit (whose
    # clean-up takes as long as the machine's load makes it): a timer and a signal.
    assert wait_until(lambda: not is_alive(state), 60)
    took = time.monotonic() - started
    assert proc.wait(timeout=scaled(30)) == 128 + signal.SIGKILL
    assert 0.5 <= took < DEFAULT_STOP_TIMEOUT, took


def test_exec_joins_the_namespaces_and_cgroups_and_signals_propagate(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    c = unique_name()
    proc = runtime.start(
        "run", "--rm", "--name", c, "--hostname", "exec-box", "--rootfs", str(busybox_rootfs),
        "sh", "-c", "echo hi > /tmp/mark; echo web:x:33:44::/w:/bin/sh >> /etc/passwd; "
        "echo grp:x:55:root,web >> /etc/group; echo ready; exec sleep 60",
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    runtime.wait_running(c, proc)
    # -u by name, through the passwd and group files the container itself changed
    named = runtime("exec", "-u", "web", c, "sh", "-c", "id -u; id -g; id -G")
    assert named.stdout.split() == ["33", "44", "44", "55"], named.stderr
    assert runtime("exec", "-u", "33:7", c, "id", "-g").stdout == "7\n"
    unknown = runtime("exec", "-u", "nobody-here", c, "true")
    assert unknown.returncode != 0
    assert unknown.stderr == ("unionfs: --user nobody-here: no user 'nobody-here' in the "
                              "container's /etc/passwd\n")
    done = runtime("exec", c, "sh", "-c", "hostname; cat /tmp/mark; ps; echo $$")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["exec-box", "hi"]
    assert any(re.match(r"\s*1 +\S+ +sleep 60", line) for line in lines), lines
    # in the container's cgroup namespace its own cgroup is "/" (elsewhere: "/.." and more)
    inside = runtime("exec", c, "cat", "/proc/self/cgroup")
    assert "pids:/\n" in inside.stdout and "memory:/\n" in inside.stdout, inside.stdout
    assert runtime("exec", c, "sh", "-c", "exit 5").returncode == 5
    sleeper = subprocess.Popen(runtime.cmd("exec", c, "sleep", "60"), env=runtime.env, text=True)
    runtime.started.append(sleeper)
    assert wait_until(lambda: runs_below(sleeper.pid, ["sleep", "60"]), 30), "exec did not start"
    sleeper.send_signal(signal.SIGTERM)  # not PID 1 of the namespace: TERM kills it
    assert sleeper.wait(timeout=scaled(30)) == 128 + signal.SIGTERM
    assert runtime("kill", c, "KILL").returncode == 0
    assert proc.wait(timeout=scaled(30)) == 128 + signal.SIGKILL


@pytest.mark.parametrize("delay", [0.05, 0.4, 0.8])
def test_sigterm_at_any_point_of_the_start_leaves_nothing(
    runtime: Runtime, busybox_rootfs: Path, delay: float
) -> None:
    proc = runtime.start(
        "run", "--rm", "--stop-timeout", "0.2", "--rootfs", str(busybox_rootfs), "sleep", "60"
    )
    time.sleep(delay)  # a moment to interrupt at, not a wait: every outcome below is right
    proc.send_signal(signal.SIGTERM)
    # before the process exists: 143, the runtime stops; after: forwarded, ignored by
    # PID 1, killed at the stop timeout: 137 (or -15 when the signal came before Python
    # set up its handlers, when nothing was made yet)
    assert proc.wait(timeout=scaled(30)) in (128 + signal.SIGTERM, 128 + signal.SIGKILL, -15)


def test_a_killed_runtime_is_cleaned_up_by_rm(runtime: Runtime, busybox_rootfs: Path) -> None:
    c = unique_name()
    proc = runtime.start(
        "run", "--name", c, "--memory", "64m", "--rootfs", str(busybox_rootfs), "sleep", "60"
    )
    runtime.wait_running(c, proc)
    proc.kill()  # SIGKILL: the runtime cannot clean up
    proc.wait()
    listing = runtime("ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}").stdout
    assert f"{c} Unknown Unknown (its runtime is gone" in listing
    done = runtime("rm", c)
    assert done.returncode == 0, done.stderr
    assert runtime("ps", "-a").stdout.count("\n") == 1
