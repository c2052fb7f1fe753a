"""``unionfs run`` as an ordinary user: a busybox container whose root is the user (uid 0
inside, the user's uid outside), nothing left behind; and bad input named up front."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from patience import wait_until
from rootlessutil import RootlessUser, remove_user

BUSYBOX = "/bin/busybox"


@pytest.fixture
def rootfs(rootless_user: RootlessUser) -> Path:
    """A busybox rootfs owned by the user (as an image it imported would be)."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=rootless_user.base))
    (root / "bin").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "id", "touch", "stat", "cat", "ls", "true", "sleep"):
        os.symlink("busybox", root / "bin" / applet)
    for d in ("proc", "dev", "sys", "tmp", "out"):
        (root / d).mkdir()
    rootless_user.chown(root)
    return root


def _store(user: RootlessUser) -> Path:
    return user.home / ".local" / "share" / "unionfs"


def test_run_as_user_is_root_inside_and_the_user_outside(
    rootless_user: RootlessUser, rootfs: Path
) -> None:
    user = rootless_user
    out = rootfs.with_name(rootfs.name + "-out")
    out.mkdir()
    user.chown(out)
    inside = "id -u; id -g; stat -c %u:%g /bin/busybox; touch /out/made /made; "
    inside += "cat /proc/self/uid_map"
    proc = user.unionfs("run", "--name", "rl-one", "-v", f"{out}:/out", "--rootfs", str(rootfs),
                        "sh", "-c", inside)  # fmt: skip
    lines = proc.stdout.split()
    assert lines[:3] == ["0", "0", "0:0"]
    assert lines[3:6] == ["0", str(user.uid), "1"]  # the user is root inside
    assert lines[6] == "1"  # ... and its subordinate ids follow
    assert (out / "made").stat().st_uid == user.uid  # outside, files are the user's
    assert "no delegated cgroup" in proc.stderr  # said, in one line
    assert len(proc.stderr.strip().splitlines()) == 1
    containers = _store(user) / "containers"
    (state,) = [p for p in containers.iterdir() if p.is_dir()]
    made = state / "upper" / "made"
    assert (made.stat().st_uid, made.stat().st_gid) == (user.uid, user.gid)
    # The FUSE mount lived in the user's namespaces: nothing of it here, no process left.
    assert not os.path.ismount(state / "rootfs")
    user.unionfs("rm", "rl-one")
    assert [p for p in containers.iterdir() if p.is_dir()] == []
    assert _processes_left(user.uid) == []


def _processes_left(uid: int, patience: float = 30.0) -> list[str]:
    """The processes of *uid* still there once exiting ones had time to go (a FUSE daemon
    exits by itself, after its mount is gone)."""
    wait_until(lambda: not _processes_of(uid), patience)
    return _processes_of(uid)


def _processes_of(uid: int) -> list[str]:
    """The live processes of *uid* (an exited FUSE daemon may wait, a zombie, for the
    machine's init to reap it: it holds nothing)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
                if state != "Z":
                    found.append(Path(f"/proc/{entry}/cmdline").read_text())
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def test_run_rm_as_user_leaves_nothing(rootless_user: RootlessUser, rootfs: Path) -> None:
    rootless_user.unionfs("run", "--rm", "--rootfs", str(rootfs), "true")
    containers = _store(rootless_user) / "containers"
    assert [p for p in containers.iterdir() if p.is_dir()] == []


def _one_line_failure(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("unionfs: ")
    return lines[0]


def test_unusable_dev_fuse_is_named_with_its_fix(rootless_user: RootlessUser, rootfs: Path) -> None:
    if os.stat("/dev/fuse").st_mode & 0o006 == 0o006:
        pytest.skip("/dev/fuse is usable by everyone on this machine")
    proc = rootless_user.unionfs("run", "--rm", "--rootfs", str(rootfs), "true", fuse=False,
                                 check=False)  # fmt: skip
    line = _one_line_failure(proc)
    assert "/dev/fuse is not usable" in line and "chmod 0666 /dev/fuse" in line


def test_limits_without_a_delegated_cgroup_are_refused_with_the_fix(
    rootless_user: RootlessUser, rootfs: Path
) -> None:
    proc = rootless_user.unionfs("run", "--rm", "--pids", "20", "--rootfs", str(rootfs), "true",
                                 check=False)  # fmt: skip
    line = _one_line_failure(proc)
    assert "--pids needs a cgroup delegated to you" in line and "chown -R" in line


@pytest.fixture
def user_without_subids(rootless_user: RootlessUser) -> Iterator[RootlessUser]:
    """A second user, created without /etc/subuid and /etc/subgid ranges."""
    name = f"{rootless_user.name}n"
    home = rootless_user.base / "home-nosub"
    subprocess.run(["useradd", "-m", "-d", str(home), "-K", "SUB_UID_COUNT=0", "-K",
                    "SUB_GID_COUNT=0", "-s", "/bin/sh", name], check=True)  # fmt: skip
    import pwd

    entry = pwd.getpwnam(name)
    try:
        yield RootlessUser(name, entry.pw_uid, entry.pw_gid, home, rootless_user.base,
                           rootless_user.python, rootless_user.pythonpath,
                           rootless_user.fuse_node)  # fmt: skip
    finally:
        problems = remove_user(name, entry.pw_uid)
        assert not problems, f"left behind: {problems}"


def test_no_subordinate_ids_maps_only_the_user_and_says_so(
    user_without_subids: RootlessUser, rootfs: Path
) -> None:
    user = user_without_subids
    user.chown(rootfs)
    proc = user.unionfs("run", "--rm", "--rootfs", str(rootfs), "cat", "/proc/self/uid_map")
    assert proc.stdout.split() == ["0", str(user.uid), "1"]
    assert f"no range for {user.name} in /etc/subuid and /etc/subgid" in proc.stderr
    assert "usermod --add-subuids" in proc.stderr
    refused = user.unionfs("run", "--rm", "--user", "5", "--rootfs", str(rootfs), "true",
                           check=False)  # fmt: skip
    line = _one_line_failure(refused)
    assert "needs subordinate ids" in line and "usermod --add-subuids" in line


@pytest.fixture
def delegated_pids_cgroup(rootless_user: RootlessUser) -> Iterator[Path]:
    """A v1 pids cgroup below ours, handed to the user with chown (as an admin would)."""
    own = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, where = line.split(":", 2)
        if "pids" in controllers.split(","):
            own = where
    hierarchy = Path("/sys/fs/cgroup/pids")
    if own is None or not (hierarchy / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 pids hierarchy here")
    path = hierarchy / own.lstrip("/") / f"rootless-test-{rootless_user.name}"
    path.mkdir()
    try:
        rootless_user.chown(path)
        yield path
    finally:
        for child in path.iterdir():
            if child.is_dir():
                child.rmdir()
        path.rmdir()


def test_run_as_user_uses_a_delegated_cgroup(
    rootless_user: RootlessUser, rootfs: Path, delegated_pids_cgroup: Path
) -> None:
    user = rootless_user
    run = [user.python, "-m", "unionfs", "run", "--rm", "--pids", "20", "--rootfs", str(rootfs),
           "sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/pids/pids.max"]  # fmt: skip
    # The user's shell moves itself into the delegated cgroup, then becomes the runtime.
    script = f'echo $$ > {delegated_pids_cgroup}/cgroup.procs && exec "$@"'
    proc = user.run(["sh", "-c", script, "sh", *run])
    assert proc.stderr == ""  # no notice: the limits apply
    (line,) = [ln for ln in proc.stdout.splitlines() if ":pids:" in ln]
    # its cgroup namespace's root is its own cgroup, shown at /sys/fs/cgroup with its limit
    assert line.split(":", 2)[2] == "/"
    assert proc.stdout.splitlines()[-1] == "20"
    assert [p for p in delegated_pids_cgroup.iterdir() if p.is_dir()] == []  # removed


def test_exec_ps_and_kill_as_user(rootless_user: RootlessUser, rootfs: Path) -> None:
    """exec joins the container's user namespace first; ps, stats and kill need nothing
    more."""
    user = rootless_user
    unionfs = f"{user.python} -m unionfs"
    script = f"""
{unionfs} run --rm --name rl-exec --rootfs {rootfs} sleep 60 2>/dev/null &
runtime=$!
until {unionfs} ps --filter status=running --format '{{{{.Names}}}}' \\
    | grep -qx rl-exec; do kill -0 $runtime || break; sleep 0.05; done
{unionfs} exec rl-exec sh -c 'echo $(id -u) $$'
{unionfs} stats rl-exec --no-stream >/dev/null && echo stats-ok
{unionfs} kill rl-exec KILL
wait $runtime
echo "exit $?"
"""
    proc = user.run(["sh", "-c", script])
    lines = proc.stdout.split("\n")
    uid, pid = lines[0].split()
    assert uid == "0" and int(pid) > 1  # root in the container's own PID namespace
    assert "stats-ok" in proc.stdout  # no cgroup: dashes, not an error
    assert "exit 137" in proc.stdout
    assert [p for p in (_store(user) / "containers").iterdir() if p.is_dir()] == []


def test_a_rootfs_owned_by_host_root_runs_and_shows_unmapped_owners(
    rootless_user: RootlessUser, rootfs: Path
) -> None:
    """Host root is not mapped in the user's namespace: its files show as the overflow id
    (65534) and stay readable through their "other" bits; new files are the container's.
    (A store for a user extracts layers inside the user's namespace, as podman does, so
    that image owners are mapped ids.)"""
    subprocess.run(["chown", "-R", "0:0", str(rootfs)], check=True)
    rootfs.chmod(0o755)  # (made by mkdtemp: 0700) only "other" bits reach unmapped owners
    inside = "stat -c %u:%g /bin/busybox; touch /tmp/x && stat -c %u:%g /tmp/x"
    proc = rootless_user.unionfs("run", "--rm", "--rootfs", str(rootfs), "sh", "-c", inside)
    assert proc.stdout.split() == ["65534:65534", "0:0"]


def test_rm_cleans_up_after_a_killed_rootless_runtime(
    rootless_user: RootlessUser, rootfs: Path
) -> None:
    """The mount of a rootless container lives in its runtime's mount namespace, which
    only the FUSE daemon holds once the runtime is SIGKILLed. rm cannot see that mount,
    but removing the state directory removes its mount point, and the kernel then
    detaches the mounts on it in every namespace (since Linux 3.18): the daemon exits."""
    user = rootless_user
    unionfs = f"{user.python} -m unionfs"
    script = f"""
{unionfs} run --name rl-dead --rootfs {rootfs} sleep 60 2>/dev/null &
runtime=$!
until {unionfs} ps --filter status=running --format '{{{{.Names}}}}' \\
    | grep -qx rl-dead; do kill -0 $runtime || break; sleep 0.05; done
kill -KILL $runtime
wait $runtime
{unionfs} rm -f rl-dead && echo removed
"""
    proc = user.run(["sh", "-c", script])
    assert "removed" in proc.stdout
    assert [p for p in (_store(user) / "containers").iterdir() if p.is_dir()] == []
    assert _processes_left(user.uid) == []
