"""Real containers for the runtime tests: a busybox rootfs, a fresh UNIONFS_HOME per test,
and a check after every test that none of its mounts, processes or cgroups remain.

Containers are started through the CLI (``python -m unionfs run``) as child processes of
the test; one still running at teardown is killed by its pid, never by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from patience import wait_until

from runtime.containerutil import Runtime, container_cgroups, processes_mentioning
from unionfs.runtime.state import ContainerDirs


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's busybox-static, installed with ``busybox --install -s`` into a new root."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    assert os.path.exists(busybox), "busybox is missing: ./dev.sh setup installs busybox-static"
    root = tmp_path_factory.mktemp("busybox-rootfs")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s"], check=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\ntty:x:5:\n")
    (root / "tmp").chmod(0o1777)
    return root


@pytest.fixture(scope="session")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C programs of probes/ (attacks a container must not get away with), built
    static: they run in the busybox rootfs, which has no libc. Bind it with -v DIR:/probe."""
    assert shutil.which("gcc"), "gcc is missing: ./dev.sh setup installs it"
    out = tmp_path_factory.mktemp("probes")
    for source in sorted((Path(__file__).parent / "probes").glob("*.c")):
        subprocess.run(["gcc", "-static", "-O", "-o", str(out / source.stem), str(source)],
                       check=True)  # fmt: skip
    return out


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A Runtime with a fresh UNIONFS_HOME; afterwards nothing of its containers remains.

    What is left is reported as a failure, after ``unionfs rm -f`` has cleaned it up (so
    that one failing test does not leave mounts, processes or cgroups to the next)."""
    home = tmp_path / "home"
    home.mkdir()
    before = container_cgroups()
    rt = Runtime(home)
    try:
        yield rt
    finally:
        rt.stop_all()
    # FUSE daemons exit on their own after the unmount
    wait_until(lambda: not processes_mentioning(str(home)), 30)
    leaks = leftovers(home, before)
    if leaks:
        for state in ContainerDirs(str(home)).all():
            rt("rm", "-f", state.id)
    assert leaks == []


def leftovers(home: Path, cgroups_before: set[Path]) -> list[str]:
    """Everything of the containers of *home* that still exists."""
    found = [f"process {p}" for p in processes_mentioning(str(home))]
    for cgroup in sorted(container_cgroups() - cgroups_before):
        procs = (cgroup / "cgroup.procs").read_text().split()
        found.append(f"cgroup {cgroup} (processes: {procs})")
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        found += [f"mount {line.split()[4]}" for line in f if str(home) in line]
    found += [
        f"container {s.name} ({s.status})"
        for s in ContainerDirs(str(home)).all()
        if s.status != "exited"
    ]
    return found
