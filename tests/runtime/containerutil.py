"""Running the unionfs CLI as containers for tests, and finding what they leave behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from patience import Deadline, descendants, exit_of, scaled

from unionfs.runtime import placement
from unionfs.runtime.state import ContainerDirs, State

CGROUP_ROOT = Path("/sys/fs/cgroup")


def own_cgroup_dirs() -> list[Path]:
    """Our own cgroup in every hierarchy (where containers' cgroups are made: ours in the
    v1 ones we use and, for device programs, a hybrid host's v2 one; runc's in all)."""
    dirs = [Path(p) for p in placement.named("", str(CGROUP_ROOT)).dirs.values()]
    return [d for d in dirs if d.is_dir()]


def container_cgroups() -> set[Path]:
    """The ``unionfs-*`` cgroups below our own, in every hierarchy, of this session only.

    Other sessions on a machine share the root cgroup of most v1 hierarchies (cpu, pids,
    devices here) but each has its own memory cgroup: a name found in one of the shared
    hierarchies is ours only if our memory cgroup holds it too (both are made and removed
    together), so that another session's containers are never taken for our leaks."""
    found = {p for d in own_cgroup_dirs() for p in d.glob("unionfs-*")}
    memory = placement.named("", str(CGROUP_ROOT)).dirs.get("memory")
    if memory is None or Path(memory) == CGROUP_ROOT / "memory":
        return found  # no memory cgroup of our own: nothing tells sessions apart
    ours = {p.name for p in Path(memory).glob("unionfs-*")}
    return {p for p in found if p.name in ours}


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


class Runtime:
    """The unionfs CLI with one UNIONFS_HOME; remembers the containers it starts. With
    *oci_runtime* (runc, crun), ``run`` and ``create`` hand their containers to it."""

    def __init__(self, home: Path, oci_runtime: str = "unionfs") -> None:
        self.home = home
        self.oci_runtime = oci_runtime
        self.env = {**os.environ, "UNIONFS_HOME": str(home)}
        self.started: list[subprocess.Popen[str]] = []

    def cmd(self, *args: str) -> list[str]:
        if args[:1] in (("run",), ("create",)) and self.oci_runtime != "unionfs":
            args = (args[0], "--runtime", self.oci_runtime, *args[1:])
        return [sys.executable, "-m", "unionfs", *args]

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cmd(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=scaled(timeout),
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 60) -> str:
        """The command's stdout; the test fails, with the command's stderr, unless it exits 0."""
        done = self(*args, timeout=timeout)
        assert done.returncode == 0, f"{args}: exit {done.returncode}: {done.stderr}"
        return done.stdout

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.cmd(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.started.append(proc)
        return proc

    def wait_running(self, name: str, proc: subprocess.Popen[str], timeout: float = 30) -> State:
        deadline = Deadline(timeout)
        while not deadline.expired():
            state = next((s for s in ContainerDirs(str(self.home)).all() if s.name == name), None)
            if state is not None and state.status == "running":
                return state
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"{name} ended with {proc.returncode}: {out}{err}")
            time.sleep(0.02)
        raise AssertionError(f"{name} is not running after {deadline}")

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the runtime cleans up, however long it takes
                if not exit_of(proc):
                    proc.kill()
                    proc.wait()
            proc.communicate()


def runs_below(pid: int, argv: list[str]) -> bool:
    """A live process below *pid* runs exactly *argv* (so what started it is in place)."""
    want = "\0".join(argv).encode() + b"\0"
    for p in descendants(pid):
        try:
            if Path(f"/proc/{p}/cmdline").read_bytes() == want:
                return True
        except OSError:
            continue
    return False


def unique_name() -> str:
    """A container name no other test (nor another run of this one) uses."""
    return f"t-{uuid.uuid4().hex[:10]}"
