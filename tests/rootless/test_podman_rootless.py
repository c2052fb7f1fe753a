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
from podman_user import RootlessPodman, leftover_cgroups, unionfs_wrapper, user_processes
from podmanutil import busybox_rootfs, missing_tools
from script import Recorder, Transcript, run_script
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
    log = cases / "mount-program.log"
    log.touch()
    user.chown(log)
    wrapper = unionfs_wrapper(user, cases / "unionfs-mount-program", log)
    programs = {"fuse-overlayfs": FUSE_OVERLAYFS, "unionfs": str(wrapper)}

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
        if procs := user_processes(user):
            problems.append(f"processes of the user left: {procs}")
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


# What a container sees of owners: the image's root-owned files, files it makes, and
# whether it may read a root-only file.
OWNERS = """id -u; id -g
touch /tmp/mine && mkdir /tmp/mydir && echo w >> /data/append
stat -c '%n %u:%g %a' /bin/busybox /data /data/keep /data/secret /data/append /tmp/mine \
/tmp/mydir
cat /data/secret 2>/dev/null || echo secret unreadable
"""
STORED = "stat -c '%n %u:%g %a' /tmp/mine /tmp/mydir /data/append /data/keep"


def id_mapped_script(pm: RootlessPodman, flags: tuple[str, ...]) -> Transcript:
    """A container with *flags* (an id map) writes; what the image, the next container
    with and without the map, ``diff`` and ``commit`` make of it."""
    rec = Recorder(pm)
    s = rec.step
    s("run --rm", "run", "--rm", *flags, IMAGE, "sh", "-c", OWNERS)
    s("run m1", "run", "--name", "m1", *flags, IMAGE, "sh", "-c", OWNERS)
    s("diff m1", "diff", "m1", sort=True)
    s("commit m1", "commit", "m1", "img-m")
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    s("run img-m", "run", "--rm", "img-m", "sh", "-c", STORED)
    s("run img-m mapped", "run", "--rm", *flags, "img-m", "sh", "-c", STORED)
    s("rm m1", "rm", "m1")
    s("rmi img-m", "rmi", "img-m")
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    return rec.steps


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--userns=keep-id",), ",uidmapping=:0:1:"),
        (("--uidmap", "0:1:1", "--gidmap", "0:1:1"), ",squash_to_uid=1,squash_to_gid=1 "),
    ],
    ids=["keep-id", "single-id"],
)
def test_rootless_podman_id_maps_on_unionfs_as_on_fuse_overlayfs(
    podman: Callable[..., RootlessPodman], flags: tuple[str, ...], expected: str
) -> None:
    ours = podman("unionfs")
    on_unionfs = id_mapped_script(ours, flags)
    peer = id_mapped_script(podman("fuse-overlayfs"), flags)
    assert differences(peer, on_unionfs) == {}
    # podman did pass its id map to unionfs: a map for keep-id, squash for a single id.
    calls = (ours.base.parent / "mount-program.log").read_text()
    assert expected in calls, calls
