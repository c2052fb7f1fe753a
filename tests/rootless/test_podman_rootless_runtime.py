"""Rootless podman with ``unionfs-runtime`` as its OCI runtime, next to runc.

The session's test user runs tests/podman/test_podman_runtime.py's script through podman
once with runc and once with our runtime (run by the user's Python through a wrapper), on
the kernel's overlay driver and (slow tier) on unionfs as the mount program: every step's
exit code and output must be runc's. Afterwards our runtime's state directory (in the
user's XDG_RUNTIME_DIR) is empty, and no process, cgroup or mount of the user is left.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "podman"))

from podman_user import RootlessPodman, leftover_cgroups, unionfs_wrapper, user_processes
from podmanutil import busybox_rootfs, missing_tools
from rootlessutil import RootlessUser
from test_podman_runtime import IMAGE, compare


def runtime_wrapper(user: RootlessUser, path: Path) -> Path:
    """``unionfs-runtime`` with the Python the user can run."""
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(user.pythonpath)} PYTHONDONTWRITEBYTECODE=1 "
        f'exec {shlex.quote(user.python)} -m unionfs.cli.oci "$@"\n'
    )
    path.chmod(0o755)
    return path


@pytest.fixture
def pair(rootless_user: RootlessUser,
         tmp_path: Path) -> Iterator[Callable[[bool], list[RootlessPodman]]]:  # fmt: skip
    """``pair(on_unionfs)``: the user's podman with runc, and with ours."""
    if missing := missing_tools():
        pytest.skip(f"not installed: {', '.join(missing)}")
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                         check=True).stdout  # fmt: skip
    cases = Path(tempfile.mkdtemp(prefix="runtime-", dir=rootless_user.base))
    cases.chmod(0o755)
    log = cases / "mount-program.log"
    log.touch()
    log.chmod(0o666)
    program = str(unionfs_wrapper(rootless_user, cases / "unionfs-mount-program", log))
    runtime = str(runtime_wrapper(rootless_user, cases / "unionfs-runtime"))
    made: list[RootlessPodman] = []

    def make(on_unionfs: bool) -> list[RootlessPodman]:
        storage = program if on_unionfs else None
        kind = "unionfs" if on_unionfs else "kernel"
        pms = [RootlessPodman(rootless_user, cases / f"runc-{kind}", storage),
               RootlessPodman(rootless_user, cases / f"ours-{kind}", storage,
                              runtime=runtime)]  # fmt: skip
        for pm in pms:
            made.append(pm)
            pm.import_rootfs(tar, IMAGE)
        return pms

    try:
        yield make
    finally:
        problems = []
        for pm in made:
            state = pm.runtime_dir / "unionfs-runtime"
            if state.exists() and any(state.iterdir()):
                problems.append(f"left in {state}: {sorted(p.name for p in state.iterdir())}")
        problems += [f"{pm.base.name}: {p}" for pm in made for p in pm.teardown()]
        subprocess.run(["rm", "-rf", str(cases)], check=False)
        if left := leftover_cgroups(rootless_user):
            problems.append(f"cgroups left: {left}")
        if procs := user_processes(rootless_user):
            problems.append(f"processes left: {procs}")
        assert not problems, "\n".join(problems)


def test_rootless_podman_through_our_runtime_as_through_runc(
    pair: Callable[[bool], list[RootlessPodman]],
) -> None:
    compare(list(pair(False)))


@pytest.mark.slow
def test_rootless_podman_on_unionfs_storage_through_our_runtime(
    pair: Callable[[bool], list[RootlessPodman]],
) -> None:
    compare(list(pair(True)))
