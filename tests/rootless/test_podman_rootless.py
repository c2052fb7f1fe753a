"""Rootless podman with unionfs as its overlay ``mount_program``, against the kernel.

The session's fresh test user runs issue 11's podman script (tests/podman/script.py) once
per driver, each in its own storage, and every step must match what the kernel's overlayfs
(mounted by podman in its user namespace, Linux 5.11+) shows, as in the root test.
fuse-overlayfs runs it too (slow tier), and where it differs it is recorded, not asserted
(it varies from run to run), except where the kernel cannot run the case (a squashing id
map, a user without subordinate ids): there fuse-overlayfs is the only reference. Then the
id-mapped cases: ``--userns=keep-id`` (podman passes ``uidmapping=``/``gidmapping=``), a
one-id map ``--uidmap 0:1:1`` (``squash_to_uid=``/``squash_to_gid=``), and a second user
without subordinate ids (no owner option). Afterwards no mount, mount-program daemon,
process or cgroup of the users is left, and the users are gone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "podman"))

from podman_user import RootlessPodman, leftover_cgroups, unionfs_wrapper, user_processes
from podmanutil import busybox_rootfs, missing_tools
from rootlessutil import RootlessUser, remove_user
from script import Recorder, Transcript, run_script
from test_podman_on_unionfs import (
    FUSE_OVERLAYFS_DIFFERS,
    differences,
    image_paths,
    in_mount_program_form,
    record_peer,
)

from unionfs import __version__

FUSE_OVERLAYFS = "/usr/bin/fuse-overlayfs"
IMAGE = "localhost/unionfs-test-busybox"


@pytest.fixture
def lone_user(rootless_user: RootlessUser) -> Iterator[RootlessUser]:
    """A second fresh user without subordinate ids (podman then has a one-id namespace)."""
    name = f"ufsln{secrets.token_hex(4)}"
    home = rootless_user.base / name
    subprocess.run(["useradd", "-m", "-d", str(home), "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0",
                    "-K", "SUB_GID_COUNT=0", name], check=True, capture_output=True)  # fmt: skip
    entry = pwd.getpwnam(name)
    try:
        yield dataclasses.replace(rootless_user, name=name, uid=entry.pw_uid,
                                  gid=entry.pw_gid, home=home)  # fmt: skip
    finally:
        problems = remove_user(name, entry.pw_uid)
        assert not problems, f"left behind: {problems}"


@pytest.fixture
def podman(rootless_user: RootlessUser, tmp_path: Path) -> Iterator[Callable[..., RootlessPodman]]:
    """``podman("unionfs" | "fuse-overlayfs" | "kernel", user=the session's user)``: the
    user's podman on its own storage, with the image imported."""
    if missing := missing_tools():
        pytest.skip(f"not installed: {', '.join(missing)}")
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    plain = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                           check=True).stdout  # fmt: skip
    owned_files(rootfs, rootless_user.uid, rootless_user.gid)
    with_owners = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                                 check=True).stdout  # fmt: skip
    made: list[RootlessPodman] = []
    cases = Path(tempfile.mkdtemp(prefix="podman-", dir=rootless_user.base))
    cases.chmod(0o755)
    log = cases / "mount-program.log"
    log.touch()
    log.chmod(0o666)  # every test user's podman runs the wrapper
    wrapper = unionfs_wrapper(rootless_user, cases / "unionfs-mount-program", log)
    programs = {"fuse-overlayfs": FUSE_OVERLAYFS, "unionfs": str(wrapper), "kernel": None}

    def make(program: str, user: RootlessUser = rootless_user) -> RootlessPodman:
        lone = user is not rootless_user
        # Without subordinate ids podman can only store the user's own ids.
        options = 'ignore_chown_errors = "true"\n' if lone else ""
        pm = RootlessPodman(user, cases / f"{program}-{user.name}", programs[program], options)
        made.append(pm)
        pm.import_rootfs(plain if lone else with_owners, IMAGE)
        return pm

    try:
        yield make
    finally:
        problems = [f"{pm.base.name}: {p}" for pm in made for p in pm.teardown()]
        subprocess.run(["rm", "-rf", str(cases)], check=False)
        for user in {pm.user.name: pm.user for pm in made}.values():
            if left := leftover_cgroups(user):
                problems.append(f"cgroups of {user.name} left: {left}")
            if procs := user_processes(user):
                problems.append(f"processes of {user.name} left: {procs}")
        assert not problems, "\n".join(problems)


Differences = dict[str, tuple[list[str], list[str]]]


def assert_only_known(found: Differences, known: Differences) -> None:
    """Every line where fuse-overlayfs and unionfs differ is one written down as a
    fuse-overlayfs bug. Some of its wrong lines come from its attribute cache and are not
    there every time, so a known difference may be missing; unionfs's side of each is
    checked against the kernel where the kernel can run the same case."""
    unknown = {}
    for step, (peer_only, ours_only) in found.items():
        peer_known, ours_known = known.get(step, ([], []))
        extra = (sorted(set(peer_only) - set(peer_known)), sorted(set(ours_only) - set(ours_known)))
        if extra != ([], []):
            unknown[step] = extra
    assert unknown == {}, f"differences not known as fuse-overlayfs bugs: {unknown}"


APPEND_TO_LINKED = """echo changed >> /data/keep; cat /data/keep /data/hardlink
stat -c '%n %s %h' /data/keep /data/hardlink
"""
# fuse-overlayfs 1.10, after an append to /data/keep (whose lower inode /data/hardlink
# shares): stat shows the other name with the new size and the copied-up file still with
# 2 links; `podman diff` does not report /data/keep changed, and `podman commit` drops the
# change (the committed image has the old 5 bytes). The kernel's overlayfs and unionfs
# break the link on copy-up (keep: 13 bytes, 1 link; hardlink: the lower's 5 bytes, 2
# links), report the change and commit it. The kernel driver computes diff from the upper
# directory and so leaves out the parent directory that podman's walk of two mounts adds.
# The steps where fuse-overlayfs may differ, with what it showed in one run:
HARD_LINK_DIFFERS = {
    "run h1": (["/data/hardlink 13 2", "/data/keep 13 2"],
               ["/data/hardlink 5 2", "/data/keep 13 1"]),
    "diff h1": ([], ["C /data", "C /data/keep"]),
    "diff img-h": ([], ["C /data", "C /data/keep"]),
    "run img-h": (["/data/keep 5 2"], ["/data/keep 13 1", "changed"]),
}  # fmt: skip


def hard_link_script(pm: RootlessPodman) -> Transcript:
    rec = Recorder(pm)
    s = rec.step
    s("run h1", "run", "--name", "h1", IMAGE, "sh", "-c", APPEND_TO_LINKED)
    s("diff h1", "diff", "h1", sort=True)
    s("commit h1", "commit", "h1", "img-h")
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    s("diff img-h", "diff", "img-h", sort=True)
    s("run img-h", "run", "--rm", "img-h", "sh", "-c", "cat /data/keep /data/hardlink\n"
      "stat -c '%n %s %h' /data/keep /data/hardlink")  # fmt: skip
    s("rm h1", "rm", "h1")
    return rec.steps


def test_rootless_podman_script_on_unionfs_as_on_the_kernel(
    podman: Callable[..., RootlessPodman], tmp_path: Path
) -> None:
    ours = podman("unionfs")
    info = ours.ok("info", "--format", "{{json .Store.GraphOptions}}")
    version = json.loads(info)["overlay.mount_program"]["Version"]
    assert version == f"unionfs {__version__}"
    on_unionfs = run_script(ours, IMAGE)
    assert [s for s in on_unionfs if s[1] != 0] == []
    kernel_pm = podman("kernel")
    # As in the root test: the kernel agrees on everything, diffs put in one form.
    kernel = run_script(kernel_pm, IMAGE)
    base = image_paths(tmp_path / "rootfs")  # the fixture's image (with /owners)
    assert differences(in_mount_program_form(kernel, base), on_unionfs) == {}
    # A lower file with a hard link, appended to: the kernel driver's diff leaves out the
    # parent directory.
    on_unionfs = hard_link_script(ours)
    assert differences(hard_link_script(kernel_pm), on_unionfs) == {
        "diff h1": ([], ["C /data"]), "diff img-h": ([], ["C /data"])
    }  # fmt: skip
    # Owners, modes, links and setgid directories made by root in the container.
    on_unionfs = metadata_script(ours)
    assert differences(metadata_script(kernel_pm), on_unionfs) == {}


@pytest.mark.slow  # it records, never asserts: the kernel above is the oracle
def test_where_rootless_fuse_overlayfs_differs_is_recorded(
    podman: Callable[..., RootlessPodman], record_property: Callable[[str, object], None]
) -> None:
    ours, peer_pm = podman("unionfs"), podman("fuse-overlayfs")
    on_unionfs = run_script(ours, IMAGE)
    found = differences(run_script(peer_pm, IMAGE), on_unionfs)
    # A lower file with a hard link, appended to: fuse-overlayfs loses the change (what it
    # shows instead varies from run to run: once the other name's old bytes, once NULs up
    # to the new size).
    on_unionfs = hard_link_script(ours)
    found |= differences(hard_link_script(peer_pm), on_unionfs)
    on_unionfs = metadata_script(ours)
    found |= differences(metadata_script(peer_pm), on_unionfs)
    record_peer(record_property, found,
                {**FUSE_OVERLAYFS_DIFFERS, **HARD_LINK_DIFFERS, **METADATA_DIFFERS})  # fmt: skip


# Root in the container changes owners and modes, links a lower file, makes a fifo and a
# setgid directory, and looks; then the committed image is run, with and without the map.
METADATA = """chown 5:7 /data/keep && chown 1000 /tmp
touch /tmp/n && chown 65534:65534 /tmp/n
chmod 4755 /data/append && chmod 2755 /data/dir
mkdir /tmp/sgd && chown 0:5 /tmp/sgd && chmod 2775 /tmp/sgd && touch /tmp/sgd/f
mkdir /tmp/sgd/sub && ln /data/keep /tmp/kl && mv /data/gone /tmp/gone && mkfifo /tmp/fifo
"""
LOOK_AT = ("stat -c '%n %u:%g %a %h %s' /data/keep /tmp /tmp/n /data/append /data/dir /tmp/sgd "
           "/tmp/sgd/f /tmp/sgd/sub /tmp/kl /tmp/gone /tmp/fifo")  # fmt: skip


def metadata_script(pm: RootlessPodman) -> Transcript:
    rec = Recorder(pm)
    s = rec.step
    s("run x1", "run", "--name", "x1", IMAGE, "sh", "-c", "set -e\n" + METADATA + LOOK_AT)
    s("diff x1", "diff", "x1", sort=True)
    s("commit x1", "commit", "x1", "img-x")
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    s("run img-x", "run", "--rm", "img-x", "sh", "-c", LOOK_AT)
    s("rm x1", "rm", "x1")
    return rec.steps


# fuse-overlayfs 1.10 where the kernel's overlayfs agrees with unionfs: merged directories
# show a counted nlink (the kernel: 1); the copied-up /data/keep, linked again, shows 3
# links (2: the lower's other name is not this inode any more); a directory made in a
# setgid directory gets neither its group nor S_ISGID; and the chown of the hard-linked
# lower /data/keep is missing from `podman diff` and lost in `podman commit` (the image
# has it 0:0, and /tmp/kl, committed as a separate file, keeps 5:7).
METADATA_DIFFERS = {
    "run x1": (
        ["/data/dir 0:0 2755 3 4096", "/data/keep 5:7 644 3 5", "/tmp 1000:0 1777 3 4096",
         "/tmp/kl 5:7 644 3 5", "/tmp/sgd/sub 0:0 755 2 4096"],
        ["/data/dir 0:0 2755 1 4096", "/data/keep 5:7 644 2 5", "/tmp 1000:0 1777 1 4096",
         "/tmp/kl 5:7 644 2 5", "/tmp/sgd/sub 0:5 2755 2 4096"],
    ),
    "diff x1": ([], ["C /data/keep"]),
    "run img-x": (
        ["/data/dir 0:0 2755 3 4096", "/data/keep 0:0 644 2 5", "/tmp 1000:0 1777 3 4096",
         "/tmp/kl 5:7 644 1 5", "/tmp/sgd/sub 0:0 755 2 4096"],
        ["/data/dir 0:0 2755 1 4096", "/data/keep 5:7 644 2 5", "/tmp 1000:0 1777 1 4096",
         "/tmp/kl 5:7 644 2 5", "/tmp/sgd/sub 0:5 2755 2 4096"],
    ),
}  # fmt: skip


# What a container sees of owners: the image's root-owned files, files it makes, and
# whether it may read a root-only file.
OWNERS = """id -u; id -g
touch /tmp/mine && mkdir /tmp/mydir && echo w >> /data/append
echo w >> /owners/mine; echo w >> /owners/other; touch /owners/setgid/new
chown 5:5 /tmp/mine 2>/dev/null || echo chown refused
chown 1000:1000 /owners/mine 2>/dev/null || echo chown 1000 refused
stat -c '%n %u:%g %a' /bin/busybox /data /data/keep /data/secret /data/append /tmp/mine \
/tmp/mydir /owners/* /owners/setgid/new
cat /data/secret 2>/dev/null || echo secret unreadable
"""
STORED = "stat -c '%n %u:%g %a' /tmp/mine /tmp/mydir /data/append /data/keep /owners/*"


def owned_files(rootfs: Path, uid: int, gid: int) -> Path:
    """Files in the image owned by someone else than root: the user's ids (keep-id's
    container user), 1000, the overflow id, and a setgid directory of group 1000."""
    owners = rootfs / "owners"
    owners.mkdir(mode=0o777)
    owners.chmod(0o777)
    for name, ids, mode in (("mine", (uid, gid), 0o644), ("other", (1000, 1000), 0o664),
                            ("nobody", (65534, 65534), 0o644)):  # fmt: skip
        (owners / name).write_text(name + "\n")
        os.chown(owners / name, *ids)
        (owners / name).chmod(mode)
    (owners / "setgid").mkdir()
    os.chown(owners / "setgid", 1000, 1000)
    (owners / "setgid").chmod(0o2777)
    return rootfs


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


def setgid_lost(owner: str) -> tuple[list[str], list[str]]:
    return [f"/owners/setgid {owner} 777"], [f"/owners/setgid {owner} 2777"]


def setgid_copy_up_differs(uid: int, gid: int) -> dict[str, tuple[list[str], list[str]]]:
    """fuse-overlayfs 1.10 loses a lower setgid directory's S_ISGID when it copies the
    directory up (a file made in it), on disk: the directory shows 777 (in the committed
    image too), and under keep-id the new file gets the creator's group instead of the
    directory's. The kernel's overlayfs keeps 2777 and gives the file the directory's
    group, as unionfs does. step -> (only fuse-overlayfs's lines, only unionfs's)."""
    lost, kept = setgid_lost("1000:1000")
    made = sorted([*lost, f"/owners/setgid/new {uid}:{gid} 644"])
    right = sorted([*kept, f"/owners/setgid/new {uid}:1000 644"])
    return {"run --rm": (made, right), "run m1": (made, right),
            "run img-m": (lost, kept), "run img-m mapped": (lost, kept)}  # fmt: skip


# With squash_to_uid/gid everything shows as 0:0 in the container, the new file included;
# the committed layer, run without the map, shows the stored owner.
SQUASHED_SETGID_DIFFERS = {"run --rm": setgid_lost("0:0"), "run m1": setgid_lost("0:0"),
                           "run img-m": setgid_lost("1000:1000"),
                           "run img-m mapped": setgid_lost("0:0")}  # fmt: skip


def test_rootless_podman_keep_id_on_unionfs_as_on_the_kernel(
    podman: Callable[..., RootlessPodman],
    rootless_user: RootlessUser,
    record_property: Callable[[str, object], None],
) -> None:
    """keep-id: podman passes ``uidmapping=``/``gidmapping=``; the kernel's overlayfs (in
    podman's user namespace) is the oracle; fuse-overlayfs's differences are recorded."""
    ours = podman("unionfs")
    on_unionfs = id_mapped_script(ours, ("--userns=keep-id",))
    calls = (ours.base.parent / "mount-program.log").read_text()
    assert ",uidmapping=:0:1:" in calls and ",gidmapping=:0:1:" in calls, calls
    kernel = id_mapped_script(podman("kernel"), ("--userns=keep-id",))
    assert differences(kernel, on_unionfs) == {}
    peer = id_mapped_script(podman("fuse-overlayfs"), ("--userns=keep-id",))
    uid, gid = rootless_user.uid, rootless_user.gid
    record_peer(record_property, differences(peer, on_unionfs), setgid_copy_up_differs(uid, gid))


def test_rootless_podman_single_id_map_on_unionfs_as_on_fuse_overlayfs(
    podman: Callable[..., RootlessPodman],
) -> None:
    """A one-id map (``--uidmap 0:1:1``): podman passes ``squash_to_uid=1,squash_to_gid=1``.
    The kernel has no squash, so fuse-overlayfs is the reference here."""
    flags = ("--uidmap", "0:1:1", "--gidmap", "0:1:1")
    ours = podman("unionfs")
    on_unionfs = id_mapped_script(ours, flags)
    calls = (ours.base.parent / "mount-program.log").read_text()
    assert ",squash_to_uid=1,squash_to_gid=1 " in calls, calls
    peer = id_mapped_script(podman("fuse-overlayfs"), flags)
    assert_only_known(differences(peer, on_unionfs), SQUASHED_SETGID_DIFFERS)


def test_rootless_podman_without_subordinate_ids_on_unionfs_as_on_fuse_overlayfs(
    lone_user: RootlessUser,  # first: it must outlive podman's teardown
    podman: Callable[..., RootlessPodman],
) -> None:
    """A user with no /etc/subuid range: podman's namespace maps only the user (to 0), its
    layers keep only the user's ids (``ignore_chown_errors``), and podman passes no owner
    option. The script runs as for everyone else."""
    ours = podman("unionfs", lone_user)
    on_unionfs = run_script(ours, IMAGE)
    assert [s for s in on_unionfs if s[1] != 0] == []
    calls = (ours.base.parent / "mount-program.log").read_text()
    assert "squash_to" not in calls and "mapping=" not in calls, calls
    peer = run_script(podman("fuse-overlayfs", lone_user), IMAGE)
    assert_only_known(differences(peer, on_unionfs), FUSE_OVERLAYFS_DIFFERS)
