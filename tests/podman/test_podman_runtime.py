"""Root podman with ``unionfs-runtime`` as its OCI runtime, next to runc on the same image.

The same script (run --rm, an exit code and stderr, run -d, exec, exec -it and run -it on a
terminal, stop, logs, rm, a missing program) runs through podman once per runtime, on the
kernel's overlay driver and (slow tier) on unionfs as the mount program; every step's exit
code and output must be runc's. Our runtime gets a private ``--root`` from a wrapper
script (podman 4.3 does not pass ``--runtime-flag`` on to the clean-up that conmon starts
when a container exits, so ``run --rm`` would delete in the default root), and nothing of
it may be left there afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from podmanutil import CgroupParent, Podman, Result, busybox_rootfs, normalize
from runtime import ptyutil

OURS = str(Path(sys.executable).with_name("unionfs-runtime"))
UNIONFS = str(Path(sys.executable).with_name("unionfs"))
IMAGE = "localhost/unionfs-runtime-busybox"
Transcript = list[tuple[str, int, str]]


class PodmanLike(Protocol):
    """Root podman (podmanutil.Podman) or a rootless user's (rootless/podman_user)."""

    base: Path

    def __call__(self, *args: str) -> Result: ...
    def argv(self, *args: str) -> list[str]: ...
    def env(self) -> dict[str, str]: ...
    def container_flags(self) -> list[str]: ...


def on_a_terminal(pm: PodmanLike, *args: str) -> tuple[int, str]:
    """``podman ARGS`` on a pty (for -it): its exit code and what it showed."""
    session = ptyutil.run(pm.argv(*args), {**os.environ, **pm.env()}, cwd=str(pm.base))
    return session.code, session.output.decode(errors="replace").replace("\r", "")


LIMITS = ("--memory", "64m", "--memory-reservation", "32m", "--memory-swap", "128m",
          "--cpu-shares", "512", "--cpus", "0.5", "--cpuset-cpus", "0", "--pids-limit", "50")
SEEN_LIMITS = ("cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes "
               "memory/memory.soft_limit_in_bytes memory/memory.memsw.limit_in_bytes "
               "cpu/cpu.shares cpu/cpu.cfs_quota_us cpuset/cpuset.cpus pids/pids.max")


def transcript(pm: PodmanLike, limits: bool = False) -> Transcript:
    """The script's steps; with *limits* (root: cgroups), one with podman's limit flags."""
    steps: Transcript = []

    def step(name: str, *args: str, show_err: bool = False) -> None:
        r = pm(*args)
        # a runtime's failure (125-127) shows its message, to tell why
        err = show_err or r.rc in (125, 126, 127)
        steps.append((name, r.rc, normalize(r.out) + (f"|{r.err}" if err else "")))

    step("run --rm true", "run", "--rm", IMAGE, "true")
    # podman's default seccomp profile (in the bundle), capabilities and no_new_privs
    step("privileges", "run", "--rm", IMAGE, "grep", "-E",
         "^(CapEff|CapBnd|NoNewPrivs|Seccomp):", "/proc/self/status")  # fmt: skip
    step("run --rm exit 3", "run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3",
         show_err=True)  # fmt: skip
    step("run -d", "run", "-d", "--name", "c1", "--hostname", "box", IMAGE, "sh", "-c",
         "echo started; trap 'echo stopping; exit 3' TERM; sleep 1000 & wait")  # fmt: skip
    step("exec", "exec", "c1", "sh", "-c", "hostname; ps -o comm | grep -c sleep; exit 4")
    step("exec -e -w -u", "exec", "-e", "X=1", "-w", "/tmp", "-u", "1:1", "c1", "sh", "-c",
         "echo $X; pwd; id -u; id -g")  # fmt: skip
    code, shown = on_a_terminal(pm, "exec", "-it", "c1", "sh", "-c", "tty; stty size; exit 5")
    steps.append(("exec -it", code, shown.replace("\0", "")))
    step("stop", "stop", "-t", "30", "c1")
    step("logs", "logs", "c1")
    step("exit code", "inspect", "--format", "{{.State.ExitCode}}", "c1")
    step("rm", "rm", "c1")
    code, shown = on_a_terminal(pm, "run", *pm.container_flags(), "--rm", "-it", IMAGE, "sh",
                                "-c", "tty; exit 6")  # fmt: skip
    steps.append(("run -it", code, shown))
    if limits:
        step("limits", "run", "--rm", *LIMITS, IMAGE, "sh", "-c", SEEN_LIMITS)
    r = pm("run", "--rm", IMAGE, "no-such-program")
    found = "executable file not found" in r.err
    steps.append(("missing program", r.rc, "said so" if found else r.err))
    return steps


@pytest.fixture
def podmen(
    tmp_path: Path, cgroup_parent: CgroupParent
) -> Iterator[Callable[[str | None], list[Podman]]]:
    """``podmen(mount_program)``: podman with runc and with ours, each on its own storage
    (the same image), both torn down at the end."""
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    made: list[Podman] = []
    states: list[Path] = []

    def make(mount_program: str | None) -> list[Podman]:
        kind = "unionfs" if mount_program else "kernel"
        runc = Podman(tmp_path / f"runc-{kind}", mount_program, cgroup_parent)
        state = tmp_path / f"ours-{kind}-state"
        wrapper = tmp_path / f"ours-{kind}-bin" / "unionfs-runtime"  # podman names it so
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\nexec {OURS} --root {state} "$@"\n')
        wrapper.chmod(0o755)
        states.append(state)
        ours = Podman(tmp_path / f"ours-{kind}", mount_program, cgroup_parent, str(wrapper))
        for pm in (runc, ours):
            made.append(pm)
            pm.import_rootfs(rootfs, IMAGE)
        return [runc, ours]

    yield make
    problems = [f"{pm.base.name}: {p}" for pm in made for p in pm.teardown()]
    for state in states:
        if state.exists() and any(state.iterdir()):
            problems.append(f"left in {state}: {sorted(p.name for p in state.iterdir())}")
    assert not problems, "\n".join(problems)


def compare(pms: list[PodmanLike], limits: bool = False) -> None:
    """The transcripts of runc's podman and ours (in that order) are the same."""
    runc, ours = (transcript(pm, limits) for pm in pms)
    assert [s[:2] for s in runc if s[0] != "limits"] == [
        ("run --rm true", 0), ("privileges", 0), ("run --rm exit 3", 3), ("run -d", 0), ("exec", 4),
        ("exec -e -w -u", 0), ("exec -it", 5), ("stop", 0), ("logs", 0), ("exit code", 0),
        ("rm", 0), ("run -it", 6), ("missing program", 127),
    ]  # fmt: skip
    assert "Seccomp:\t2" in next(s[2] for s in runc if s[0] == "privileges")
    if limits:
        seen = next(s for s in runc if s[0] == "limits")
        assert seen[1] == 0 and seen[2].split() == [str(64 << 20), str(32 << 20),
                                                    str(128 << 20), "512", "50000", "0", "50"]
    assert ours == runc


def test_podman_runs_execs_stops_and_removes_through_our_runtime_as_through_runc(
    podmen: Callable[[str | None], list[Podman]],
) -> None:
    compare(list(podmen(None)), limits=True)


@pytest.mark.slow
def test_the_same_with_unionfs_as_podmans_mount_program(
    podmen: Callable[[str | None], list[Podman]],
) -> None:
    compare(list(podmen(UNIONFS)), limits=True)
