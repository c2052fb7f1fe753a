"""``unionfs top`` and ``unionfs attach`` on a detached container, through the CLI: top's
columns and header as podman's, pids as the container sees them; attach prints what comes
after it started, passes INT on (podman's --sig-proxy) and returns the container's code."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest
from patience import wait_until

from runtime.containerutil import Runtime, unique_name

# podman top's header for the default descriptors (podman 4.3, psgo's names)
PODMAN_HEADER = "USER        PID         PPID        %CPU        ELAPSED     TTY         TIME" \
    "        COMMAND"  # fmt: skip


pytestmark = pytest.mark.usefixtures("unionfs_runtime_only")



def test_top_lists_the_containers_processes_as_podman(runtime: Runtime, bb: str) -> None:
    c = f"clidaily-{unique_name()}"
    runtime.ok("run", "-d", "--name", c, bb, "sh", "-c", "sleep 300 & wait")
    try:
        _top(runtime, c)
    finally:
        runtime("rm", "-f", c)
    gone = runtime("top", c)
    assert gone.stderr == f"unionfs: no such container: {c}\n", gone.stderr


def _top(runtime: Runtime, c: str) -> None:
    assert wait_until(lambda: "sleep 300\n" in runtime.ok("top", c, "args"), 60)
    lines = runtime.ok("top", c).splitlines()
    assert lines[0] == PODMAN_HEADER
    rows = [re.split(r"\s{2,}", line) for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[5], r[7]) for r in rows] == [
        ("root", "1", "0", "?", "sh -c sleep 300 & wait"), ("root", "2", "1", "?", "sleep 300")]
    assert all(re.fullmatch(r"\d+\.\d{3}", r[3]) and r[4].endswith("s") and r[6] == "0s"
               for r in rows)  # fmt: skip
    assert runtime.ok("top", c, "pid,comm").splitlines() == runtime.ok("top", c, "pid",
                                                                 "comm").splitlines()  # fmt: skip
    assert runtime.ok("top", c, "pid", "comm").split() == ["PID", "COMMAND", "1", "sh", "2",
                                                            "sleep"]  # fmt: skip
    bad = runtime("top", c, "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("unionfs: top: unknown descriptor "
                                                          "'nope': give args, comm, ")  # fmt: skip


def _catches_term(pid: int) -> bool:
    """*pid* has a TERM handler (Python has none of its own: attach's proxy is in place)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        caught = next(line for line in f if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_attach_follows_passes_signals_and_returns_the_code(runtime: Runtime,
                                                             bb: str) -> None:  # fmt: skip
    c = f"clidaily-{unique_name()}"
    script = "trap 'echo got-term; exit 3' TERM; echo early; while :; do sleep 0.05; done"
    runtime.ok("run", "-d", "--name", c, bb, "sh", "-c", script)
    try:
        _attach(runtime, c)
    finally:
        runtime("rm", "-f", c)


def _attach(runtime: Runtime, c: str) -> None:
    assert wait_until(lambda: "early" in runtime.ok("logs", c), 60)
    attach = subprocess.Popen(runtime.cmd("attach", c), env=runtime.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    runtime.started.append(attach)
    assert wait_until(lambda: attach.poll() is not None or _catches_term(attach.pid), 60)
    attach.send_signal(signal.SIGTERM)
    out, err = attach.communicate()
    assert (attach.returncode, out, err) == (3, "got-term\n", "")  # "early" was before it
    assert runtime.ok("ps", "-a", "--format", "{{.Status}}").startswith("Exited (3)")
    refused = runtime("attach", c)
    assert (refused.returncode, refused.stderr) == (1, f"unionfs: container {c} is not running "
            f"(exited (3)): unionfs start -a {c} runs it attached\n")  # fmt: skip
