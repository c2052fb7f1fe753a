"""Real containers for the runtime tests: a busybox rootfs, a fresh UNIONFS_HOME per test,
and a check after every test that none of its mounts, processes or cgroups remain.

Containers are started through the CLI (``python -m unionfs run``) as child processes of
the test; one still running at teardown is killed by its pid, never by name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from patience import scaled, wait_until

from runtime import dailysession
from runtime.containerutil import Runtime, container_cgroups, processes_mentioning
from runtime.ocitest import OURS, OciRuntime
from unionfs.runtime.state import ContainerDirs


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's busybox-static, installed with ``busybox --install -s`` into a new root."""
    return dailysession.busybox_root(tmp_path_factory.mktemp("busybox-rootfs"))


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


@pytest.fixture(scope="session")
def crun_refusal(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path) -> str | None:
    """Why crun cannot run a container here (its own words), or None if it can."""
    crun = shutil.which("crun")
    if crun is None:
        return "crun is not installed (./dev.sh setup installs it)"
    bundle = tmp_path_factory.mktemp("crun-probe")
    subprocess.run([crun, "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["true"])
    config["root"]["path"] = str(busybox_rootfs)
    config["linux"]["cgroupsPath"] = f"unionfs-crun-probe-{uuid.uuid4().hex[:8]}"
    (bundle / "config.json").write_text(json.dumps(config))
    argv = [crun, "--root", str(bundle / "state"), "run", "--bundle", str(bundle),
            f"probe-{uuid.uuid4().hex[:8]}"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=scaled(120), check=False)  # fmt: skip
    if done.returncode == 0:
        return None
    return f"crun cannot run containers here: {done.stderr.strip().splitlines()[-1]}"


# The runtime that sets containers up: ours, or runc/crun handed a bundle of the same spec.
OCI_RUNTIMES = ["unionfs", "runc", "crun"]
# Handed to runc or crun, every container test runs in the slow tier but these modules'
# (a run, its exit code, signals, exec, rm after a killed runtime, the isolation seen
# from inside): the same tests twice would cost the default suite minutes.
DELEGATED_IN_DEFAULT_TIER = {"test_lifecycle.py", "test_isolation.py"}


@pytest.hookimpl(tryfirst=True)  # before the top conftest skips what is slow
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is None or spec.params.get("oci_runtime", "unionfs") == "unionfs":
            continue
        if item.path.name not in DELEGATED_IN_DEFAULT_TIER:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=OCI_RUNTIMES)
def oci_runtime(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name != "unionfs" and shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (./dev.sh setup installs it)")
    if name == "crun":
        refusal = request.getfixturevalue("crun_refusal")
        if refusal is not None:
            pytest.skip(refusal)  # this host's v1+v2 hybrid cgroups: crun 1.8 refuses them
    return name


@pytest.fixture
def unionfs_runtime_only(oci_runtime: str) -> None:
    """For the modules of what only unionfs's own runtime does (detached runs and their
    monitor, pasta, cp, top, the run flags): their runc and crun parametrizations (slow
    tier) are skipped. Used as ``pytestmark = pytest.mark.usefixtures(...)``."""
    if oci_runtime != "unionfs":
        pytest.skip(f"unionfs's own runtime only, not {oci_runtime}")


@pytest.fixture
def bb(runtime: Runtime, busybox_rootfs: Path) -> str:
    """The busybox rootfs imported into the test's store: the image's name."""
    runtime.ok("import", str(busybox_rootfs), "bb")
    return "bb"


@pytest.fixture
def runtime(tmp_path: Path, oci_runtime: str) -> Iterator[Runtime]:
    """A Runtime with a fresh UNIONFS_HOME; afterwards nothing of its containers remains.
    Parametrized over the OCI runtime that sets the containers up (``--runtime``).

    What is left is reported as a failure, after ``unionfs rm -f`` has cleaned it up (so
    that one failing test does not leave mounts, processes or cgroups to the next)."""
    home = tmp_path / "home"
    home.mkdir()
    before = container_cgroups()
    rt = Runtime(home, oci_runtime)
    try:
        yield rt
    finally:
        rt.stop_all()
    # FUSE daemons exit on their own after the unmount, and a detached container's
    # monitor removes its cgroups after the test's last command returned: on a busy
    # machine that takes a while, so what is left is a leak only once it stays.
    wait_until(lambda: not leftovers(home, before), 30)
    leaks = leftovers(home, before)
    if leaks:
        for state in ContainerDirs(str(home)).all():
            rt("rm", "-f", state.id)
    assert leaks == []


def leftovers(home: Path, cgroups_before: set[Path]) -> list[str]:
    """Everything of the containers of *home* that still exists."""
    found = [f"process {p}" for p in processes_mentioning(str(home))]
    for cgroup in sorted(container_cgroups() - cgroups_before):
        try:
            procs = (cgroup / "cgroup.procs").read_text().split()
        except FileNotFoundError:
            continue  # removed just now
        found.append(f"cgroup {cgroup} (processes: {procs})")
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        found += [f"mount {line.split()[4]}" for line in f if str(home) in line]
    found += [
        f"container {s.name} ({s.status})"
        for s in ContainerDirs(str(home)).all()
        if s.status != "exited"
    ]
    return found


@pytest.fixture(params=["unionfs", "runc"])
def oci(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OciRuntime]:
    """``unionfs-runtime`` or runc, driven by its command line with a private --root;
    afterwards none of its containers, processes or cgroups remain."""
    program = OURS if request.param == "unionfs" else shutil.which("runc")
    if program is None:
        pytest.skip("runc is not installed (./dev.sh setup installs it)")
    before = container_cgroups()
    rt = OciRuntime(program, tmp_path / "state")
    try:
        yield rt
    finally:
        problems = rt.cleanup()
    state = str(tmp_path / "state")

    def left() -> list[str]:
        # (only ours: other suites on this machine make unionfs-* cgroups meanwhile)
        return [f"process {p}" for p in processes_mentioning(state)] + [
            f"cgroup {c}" for c in container_cgroups() - before
            if c.name.startswith("unionfs-oci-")]  # fmt: skip

    wait_until(lambda: not left(), 30)  # a killed process's exit is slow on a busy machine
    problems += left()
    assert problems == []


@pytest.fixture
def loop_secret(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A host loop device holding a secret: (its /dev path, the secret)."""
    secret = f"TOP-SECRET-{uuid.uuid4().hex[:12]}".encode()
    backing = tmp_path / "disk.img"
    backing.write_bytes(secret.ljust(1 << 20, b"\0"))
    found = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True,
                           text=True, check=False)  # fmt: skip
    assert found.returncode == 0, f"losetup (util-linux) made no loop device: {found.stderr}"
    path = found.stdout.strip()
    try:
        yield path, secret
    finally:
        subprocess.run(["losetup", "-d", path], check=True)
    assert backing.read_bytes().startswith(secret)  # nothing wrote over it
