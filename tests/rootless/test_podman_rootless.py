"""Rootless podman with unionfs as its overlay ``mount_program``, next to fuse-overlayfs.

The session's fresh test user runs issue 11's podman script (tests/podman/script.py) once
per mount program, in its own storage, and every step must match. Where fuse-overlayfs
1.10 is wrong, the difference is the one the root test (tests/podman) shows against the
kernel driver. Then the id-mapped cases: ``--userns=keep-id`` (podman passes
``uidmapping=``/``gidmapping=``) and a single-id map ``--uidmap 0:1:1`` (podman passes
``squash_to_uid=``/``squash_to_gid=``). Afterwards no mount, mount-program daemon,
podman process or cgroup of the user is left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "podman"))

from conftest import RootlessUser
from podman_user import RootlessPodman, leftover_cgroups, unionfs_wrapper
from podmanutil import busybox_rootfs, missing_tools
from script import run_script
from test_podman_on_unionfs import FUSE_OVERLAYFS_DIFFERS, differences

from unionfs import __version__

FUSE_OVERLAYFS = "/usr/bin/fuse-overlayfs"
IMAGE = "localhost/unionfs-test-busybox"


@pytest.fixture
def podman(rootless_user: RootlessUser, tmp_path: Path) -> Iterator[Callable[..., RootlessPodman]]:
    """``podman("unionfs" | "fuse-overlayfs")``: the user's podman on its own storage."""
    if missing := missing_tools():
        pytest.skip(f"not installed: {', '.join(missing)}")
    user = rootless_user
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                         check=True).stdout  # fmt: skip
    made: list[RootlessPodman] = []
    cases = Path(tempfile.mkdtemp(prefix="podman-", dir=user.base))
    cases.chmod(0o755)
    programs = {"fuse-overlayfs": FUSE_OVERLAYFS,
                "unionfs": str(unionfs_wrapper(user, cases / "unionfs-mount-program"))}  # fmt: skip

    def make(program: str) -> RootlessPodman:
        pm = RootlessPodman(user, cases / program, programs[program])
        made.append(pm)
        pm.import_rootfs(tar, IMAGE)
        return pm

    try:
        yield make
    finally:
        problems = [f"{pm.base.name}: {p}" for pm in made for p in pm.teardown()]
        subprocess.run(["rm", "-rf", str(cases)], check=False)
        if left := leftover_cgroups(user):
            problems.append(f"cgroups left: {left}")
        assert not problems, "\n".join(problems)


def test_rootless_podman_script_on_unionfs_as_on_fuse_overlayfs(
    podman: Callable[..., RootlessPodman],
) -> None:
    ours = podman("unionfs")
    info = ours.ok("info", "--format", "{{json .Store.GraphOptions}}")
    version = json.loads(info)["overlay.mount_program"]["Version"]
    assert version == f"unionfs {__version__}"
    on_unionfs = run_script(ours, IMAGE)
    assert [s for s in on_unionfs if s[1] != 0] == []
    peer = run_script(podman("fuse-overlayfs"), IMAGE)
    assert differences(peer, on_unionfs) == {
        k: (sorted(v[0]), sorted(v[1])) for k, v in FUSE_OVERLAYFS_DIFFERS.items()
    }
