"""Device nodes: an image carrying ``b 7 N`` (a loop device holding a secret on the host)
reads and writes nothing, as root or ``--user 1000``, and the same probe fails under runc;
mknod needs --cap-add MKNOD and then makes an inert node; the device cgroup (v1 rules and
the BPF program on cgroup v2) denies what the nodev mount would let through; --privileged
opens it all, by choice."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
from patience import scaled

from runtime.containerutil import Runtime
from unionfs.runtime import devices, placement

PROBE = "head -c 24 /secretdev; echo read=$?; echo pwned > /secretdev; echo write=$?"


def _node(path: str) -> tuple[int, int]:
    rdev = os.stat(path).st_rdev
    return os.major(rdev), os.minor(rdev)


@pytest.fixture
def loop_image(runtime: Runtime, busybox_rootfs: Path, loop_secret: tuple[str, bytes],
               tmp_path: Path) -> str:  # fmt: skip
    """An image: busybox and a node ``/secretdev`` (b MAJOR MINOR of the loop, mode 0666)."""
    tar_path = tmp_path / "evil.tar"
    major, minor = _node(loop_secret[0])
    with tarfile.open(tar_path, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
        node = tarfile.TarInfo("./secretdev")
        node.type, node.mode, node.devmajor, node.devminor = tarfile.BLKTYPE, 0o666, major, minor
        tar.addfile(node)
    done = runtime("import", str(tar_path), "evil:latest")
    assert done.returncode == 0, done.stderr
    return "evil:latest"


@pytest.mark.parametrize("user", [[], ["--user", "1000"]], ids=["root", "user-1000"])
def test_a_device_node_in_an_image_reaches_no_host_device(
    runtime: Runtime, loop_image: str, loop_secret: tuple[str, bytes], user: list[str]
) -> None:
    done = runtime("run", "--rm", *user, loop_image, "sh", "-c", PROBE)
    assert loop_secret[1] not in done.stdout.encode()
    assert "read=0" not in done.stdout and "write=0" not in done.stdout, done.stdout
    assert "Permission denied" in done.stderr or "not permitted" in done.stderr, done.stderr


def test_runc_refuses_the_same_node(
    busybox_rootfs: Path, loop_secret: tuple[str, bytes], tmp_path: Path
) -> None:
    """The honest comparison: runc's default spec, the same node, the same probe."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed: nothing to compare with")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    rootfs = bundle / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    rootfs.chmod(0o755)  # (a mkdtemp copy: 0700) uid 1000 must get to /bin/sh
    os.mknod(rootfs / "secretdev", 0o666 | stat.S_IFBLK, os.makedev(*_node(loop_secret[0])))
    os.chmod(rootfs / "secretdev", 0o666)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["sh", "-c", PROBE])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["linux"]["cgroupsPath"] = f"utest-runc-security-{uuid.uuid4().hex[:8]}"
    (bundle / "config.json").write_text(json.dumps(config))
    done = subprocess.run(["runc", "run", "-b", str(bundle), f"security-{uuid.uuid4().hex[:8]}"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=scaled(120), check=False)  # fmt: skip
    assert loop_secret[1] not in done.stdout.encode()
    assert "Operation not permitted" in done.stderr, done.stderr


def test_mknod_needs_cap_mknod_and_then_makes_an_inert_node(
    runtime: Runtime, busybox_rootfs: Path, loop_secret: tuple[str, bytes]
) -> None:
    major, minor = _node(loop_secret[0])
    script = f"mknod /tmp/n b {major} {minor}; echo mknod=$?; head -c 24 /tmp/n; echo read=$?"
    plain = runtime("run", "--rm", "--rootfs", str(busybox_rootfs), "sh", "-c", script)
    assert "mknod=1" in plain.stdout and "Operation not permitted" in plain.stderr, plain.stderr
    added = runtime("run", "--rm", "--cap-add", "MKNOD", "--rootfs", str(busybox_rootfs), "sh",
                    "-c", script)  # fmt: skip
    assert "mknod=0" in added.stdout, added.stderr
    assert "read=1" in added.stdout and loop_secret[1] not in added.stdout.encode()


def test_the_device_cgroup_denies_a_node_that_no_nodev_mount_stops(
    runtime: Runtime, busybox_rootfs: Path, loop_secret: tuple[str, bytes], tmp_path: Path
) -> None:
    """A volume is a bind mount of the host's, without nodev: only the cgroup stands."""
    volume = tmp_path / "vol"
    volume.mkdir()
    os.mknod(volume / "node", 0o666 | stat.S_IFBLK, os.makedev(*_node(loop_secret[0])))
    done = runtime("run", "--rm", "-v", f"{volume}:/vol", "--rootfs", str(busybox_rootfs),
                   "sh", "-c", "head -c 24 /vol/node; echo read=$?")  # fmt: skip
    assert "read=1" in done.stdout and "Operation not permitted" in done.stderr, done.stderr
    assert loop_secret[1] not in done.stdout.encode()


def test_privileged_opens_the_node_by_choice(
    runtime: Runtime, loop_image: str, loop_secret: tuple[str, bytes]
) -> None:
    script = "head -c 24 /secretdev; grep -E 'Seccomp:|NoNewPrivs' /proc/self/status"
    done = runtime("run", "--rm", "--privileged", loop_image, "sh", "-c", script)
    assert loop_secret[1] in done.stdout.encode(), done.stderr
    assert "Seccomp:\t0" in done.stdout and "NoNewPrivs:\t0" in done.stdout


def _unified_parent() -> Path:
    own = placement.own_cgroups(Path("/proc/self/cgroup").read_text())[1]
    for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if (mount / "cgroup.controllers").is_file() and own is not None:
            return mount / own.lstrip("/")
    raise AssertionError("no cgroup2 hierarchy is mounted: the BPF device program needs one")


def test_the_bpf_device_program_allows_only_the_standard_set(tmp_path: Path) -> None:
    """cgroup v2's device rules, tested alone: a child in a v2 cgroup with the program."""
    cgroup = _unified_parent() / f"unionfs-security-test-{uuid.uuid4().hex[:8]}"
    cgroup.mkdir()
    try:
        devices.attach(str(cgroup), devices.program(devices.default_rules()))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            code = 1
            try:
                (cgroup / "cgroup.procs").write_text(str(os.getpid()))
                said = []
                for path in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/loop-control"):
                    try:
                        os.close(os.open(path, os.O_RDWR))
                        said.append(f"{path}=ok")
                    except OSError as exc:
                        said.append(f"{path}={exc.errno}")
                try:
                    os.mknod(tmp_path / "b", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
                    said.append("mknod=ok")
                except OSError as exc:
                    said.append(f"mknod={exc.errno}")
                os.write(write, " ".join(said).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        said = os.read(read, 4096).decode()
        os.close(read)
        assert status == 0
        assert said.split() == ["/dev/null=ok", "/dev/zero=ok", "/dev/urandom=ok",
                                "/dev/loop-control=1", "mknod=1"]  # fmt: skip
    finally:
        cgroup.rmdir()


def test_v1_rule_lines() -> None:
    assert [devices.v1_line(r) for r in devices.default_rules(mknod=True)][:2] == [
        "a", "c 1:3 rwm"]  # fmt: skip
    assert devices.v1_line(devices.MKNOD_ANY[1]) == "b *:* m"
    assert devices.v1_line(devices.STANDARD[-1]) == "c 136:* rwm"
