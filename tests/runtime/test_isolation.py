"""What a container sees (busybox rootfs, as root): only its own processes, host name,
loopback, IPC objects and mounts; a minimal /dev and a read-only /sys; volumes; bad input.
After each test the ``runtime`` fixture asserts that nothing of it remains."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.containerutil import Runtime, unique_name
from unionfs.runtime.state import ContainerDirs

VIEW_SCRIPT = """
echo '== ps'; ps
echo '== hostname'; hostname
echo '== net'; ls /sys/class/net; cat /sys/class/net/lo/flags
echo '== ipcs'; cat /proc/sysvipc/msg /proc/sysvipc/shm /proc/sysvipc/sem
echo '== mountinfo'; cat /proc/self/mountinfo
echo '== dev'; ls -A /dev
echo '== sys'; touch /sys/kernel/x 2>&1; echo "touch=$?"
echo '== end'
"""
CONTAINER_MOUNTS = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}
DEVICES = {"/dev/" + d for d in ("null", "zero", "full", "random", "urandom", "tty")}


def sections(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:]
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


@pytest.fixture(scope="module")
def host_ipc() -> Iterator[str]:
    """A SysV message queue on the host, made with ipcmk (util-linux), removed after."""
    out = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True).stdout
    qid = re.search(r"(\d+)\s*$", out)
    assert qid, out
    yield qid.group(1)
    subprocess.run(["ipcrm", "-q", qid.group(1)], check=True)


@pytest.fixture
def view(runtime: Runtime, busybox_rootfs: Path, host_ipc: str) -> dict[str, list[str]]:
    host = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True).stdout
    assert host_ipc in host  # the host has an object the container must not see
    done = runtime(
        "run", "--rm", "--name", unique_name(), "--hostname", "box-1",
        "--rootfs", str(busybox_rootfs), "sh", "-c", VIEW_SCRIPT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return sections(done.stdout)


def test_ps_shows_only_the_container_and_pid_1_is_the_command(view: dict[str, list[str]]) -> None:
    rows = [line.split(None, 2) for line in view["ps"][1:]]
    assert rows[0][0] == "1" and rows[0][2].startswith("sh -c")
    assert len(rows) == 2 and "ps" in rows[1][2]  # the shell and ps itself


def test_hostname_is_the_given_one(view: dict[str, list[str]]) -> None:
    assert view["hostname"] == ["box-1"]


def test_only_loopback_exists_and_it_is_up(view: dict[str, list[str]]) -> None:
    assert view["net"][0] == "lo" and len(view["net"]) == 2
    assert int(view["net"][1], 16) & 1  # IFF_UP


def test_ipcs_shows_none_of_the_hosts_objects(view: dict[str, list[str]], host_ipc: str) -> None:
    # busybox-static has no ipcs applet: read what ipcs reads, /proc/sysvipc
    host = Path("/proc/sysvipc/msg").read_text().splitlines()[1:]
    assert any(line.split()[1] == host_ipc for line in host)
    assert len(view["ipcs"]) == 3 and all(line.split()[0] == "key" for line in view["ipcs"])


def test_mountinfo_shows_none_of_the_hosts_mounts(view: dict[str, list[str]]) -> None:
    points = {line.split()[4] for line in view["mountinfo"]}
    fstypes = {line.split(" - ")[1].split()[0] for line in view["mountinfo"]}
    assert points >= CONTAINER_MOUNTS
    root = next(line for line in view["mountinfo"] if line.split()[4] == "/")
    assert "fuse.unionfs" in root
    assert fstypes <= {"fuse.unionfs", "proc", "tmpfs", "devtmpfs", "devpts", "mqueue", "sysfs",
                       "cgroup", "cgroup2"}  # fmt: skip
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        host_points = {line.split()[4] for line in f} - CONTAINER_MOUNTS
    # the only names shared with the host's mounts: bound devices, masked /proc files and
    # the container's own cgroups (bound where the host has its hierarchies)
    cgroups = {p for p in points if p == "/sys/fs/cgroup" or p.startswith("/sys/fs/cgroup/")}
    assert host_points & points <= DEVICES | {"/proc/kcore", "/proc/keys"} | cgroups


def test_dev_is_minimal_and_sys_is_read_only(view: dict[str, list[str]]) -> None:
    assert set(view["dev"]) == {
        "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
        "stdout", "tty", "urandom", "zero",
    }  # fmt: skip
    assert "Read-only file system" in " ".join(view["sys"]) and view["sys"][-1] != "touch=0"


def test_volumes_and_the_lower_layer_stays_untouched(
    runtime: Runtime, busybox_rootfs: Path, tmp_path: Path
) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "in").write_text("host data\n")
    c = unique_name()
    script = (
        "cat /data/in; echo x > /data/new 2>/dev/null || echo ro-refused; "
        "echo out > /out/file; echo changed > /etc/passwd; mkdir /srv"
    )
    done = runtime(
        "run", "--name", c, "-v", f"{ro}:/data:ro", "-v", f"{rw}:/out", "--workdir",
        "/work/dir", "--rootfs", str(busybox_rootfs), "sh", "-c", script,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "host data\nro-refused\n"
    assert (rw / "file").read_text() == "out\n" and not (ro / "new").exists()
    assert (busybox_rootfs / "etc" / "passwd").read_text().startswith("root:x:0:0")
    assert not (busybox_rootfs / "srv").exists()
    store = ContainerDirs(str(runtime.home))
    state = next(s for s in store.all() if s.name == c)
    upper = Path(store.paths(state.id).upper)
    assert (upper / "etc" / "passwd").read_text() == "changed\n"
    assert (upper / "work" / "dir").is_dir()
    assert runtime("rm", c).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["busybox", "true"], "no such image: busybox"),
        (["--rootfs", "/nonexistent-rootfs", "true"], "rootfs '/nonexistent-rootfs' does not"),
        (["--memory", "lots", "--rootfs", "ROOTFS", "true"], "--memory 'lots': not a size"),
        (["--cpus", "0", "--rootfs", "ROOTFS", "true"], "--cpus '0'"),
        (["-v", "/nonexistent-src:/x", "--rootfs", "ROOTFS", "true"], "bind source"),
        (["--bundle", "BUNDLE"], "seccomp.defaultAction 'SCMP_ACT_NOTIFY' is not supported"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    runtime: Runtime, busybox_rootfs: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(
        '{"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/"},'
        f' "root": {{"path": "{busybox_rootfs}"}}, "linux": {{"namespaces": [{{"type": '
        '"mount"}], "seccomp": {"defaultAction": "SCMP_ACT_NOTIFY"}}}'
    )
    args = [a.replace("ROOTFS", str(busybox_rootfs)).replace("BUNDLE", str(bundle)) for a in args]
    done = runtime("run", "--rm", *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert list(runtime.home.glob("containers/*/")) == []


def test_not_root_without_a_usable_fuse_device_is_refused_up_front(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    """Rootless runs are tested in tests/rootless; here only that a user who cannot use
    /dev/fuse is told so in one line before anything is made."""
    if os.stat("/dev/fuse").st_mode & 0o006 == 0o006:
        pytest.skip("/dev/fuse is usable by everyone on this machine")
    cmd = runtime.cmd("run", "--rootfs", str(busybox_rootfs), "true")
    done = subprocess.run(
        ["runuser", "-u", "nobody", "--", *cmd], capture_output=True, text=True,
        env=runtime.env, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("unionfs: /dev/fuse is not usable by you")
    assert len(done.stderr.splitlines()) == 1
