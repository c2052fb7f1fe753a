"""The zygote (UNIONFS_ZYGOTE=1): a mount handed to a resident pre-imported process, and
every way back to the ordinary start. Speed is bench's (tools/mount_start.py --zygote)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mountutil import force_unmount, is_mounted
from patience import scaled

from unionfs import livemounts
from unionfs.zygote import client

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/fuse"), reason="mounts: root and /dev/fuse"
)


def test_only_mounts_go_to_the_zygote() -> None:
    assert client.is_mount_call(["mount", "-o", "lowerdir=/a", "/m"])
    assert client.is_mount_call(["-o", "lowerdir=/a", "/m"])
    assert client.is_mount_call(["-f", "-o", "lowerdir=/a", "/m"])
    assert client.is_mount_call(["/src", "/m", "-o", "lowerdir=/a"])
    assert not client.is_mount_call(["save", "-o", "out.tar", "busybox"])
    assert not client.is_mount_call(["images"])
    assert not client.is_mount_call([])


def zygote_pid() -> int | None:
    """The pid of this checkout's zygote, if one listens (its socket's peer credentials)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(client.address())
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[0])
    except OSError:
        return None
    finally:
        sock.close()


def wait_for(what: str, check: object, seconds: float = 60) -> object:
    deadline = time.monotonic() + scaled(seconds)
    while True:
        found = check() if callable(check) else None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    wait_for("the zygote to end", lambda: gone(pid))


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    """UNIONFS_ZYGOTE=1, and no zygote of ours left behind."""
    before = zygote_pid()
    yield {**os.environ, client.ENV: "1", client.IDLE_ENV: "600"}
    after = zygote_pid()
    if after is not None and after != before:
        stop(after)


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    lower = tmp_path / "lower"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "f").write_text("from the lower\n")
    return lower


def mount(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unionfs", *args], env=env, text=True,
                          capture_output=True, timeout=scaled(120), check=False)  # fmt: skip


def served_by_zygote(mnt: Path) -> bool:
    """Whether a zygote's worker serves *mnt* (its record, written once the mount is live)."""
    record = wait_for("the mount's record", lambda: livemounts.live().get(str(mnt)))
    assert isinstance(record, livemounts.Listing)
    with open(f"/proc/{record.pid}/cmdline", "rb") as f:
        return b"unionfs.zygote.server" in f.read().split(b"\0")


def test_a_mount_is_handed_to_the_zygote_started_by_the_one_before(
    env: dict[str, str], layer: Path, tmp_path: Path
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    first = mount(env, "-o", f"lowerdir={layer}", str(mnt))
    assert first.returncode == 0, first.stderr
    try:
        assert (mnt / "d" / "f").read_text() == "from the lower\n"
    finally:
        force_unmount(mnt)
    wait_for("the zygote", zygote_pid)
    done = mount(env, "-o", f"lowerdir={layer}", str(mnt))
    assert done.returncode == 0, done.stderr
    try:
        assert (mnt / "d" / "f").read_text() == "from the lower\n"
        assert served_by_zygote(mnt)
    finally:
        force_unmount(mnt)


def test_through_the_zygote_a_bad_option_is_one_line_and_foreground_serves(
    env: dict[str, str], layer: Path, tmp_path: Path
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount(env, "mount", "-o", f"lowerdir={layer}", "/nonexistent-mountpoint-perf-start")
    wait_for("the zygote", zygote_pid)
    bad = mount(env, "-o", f"lowerdir={layer},frobnicate", str(mnt))
    assert bad.returncode != 0
    assert bad.stderr.splitlines() == ["unionfs: unknown option 'frobnicate'"]
    helped = mount(env, "mount", "--help")
    assert helped.returncode == 0 and "usage: unionfs mount" in helped.stdout
    proc = subprocess.Popen([sys.executable, "-m", "unionfs", "mount", "-f", "-o",
                             f"lowerdir={layer}", str(mnt)], env=env)  # fmt: skip
    try:
        wait_for("the foreground mount", lambda: is_mounted(mnt) or proc.poll() is not None)
        assert proc.poll() is None
        assert served_by_zygote(mnt)
        assert (mnt / "d" / "f").read_text() == "from the lower\n"
    finally:
        force_unmount(mnt)
        assert proc.wait(scaled(60)) == 0


def test_a_caller_in_another_namespace_or_checkout_is_refused() -> None:
    """The worker would be the zygote's twin, not the caller's: the caller mounts itself.
    (Such a caller asks at another address, too: see ``client.address``.)"""
    from unionfs.zygote import server

    request = {"code": client.package(), "python": sys.executable,
               "groups": sorted(os.getgroups()), "env": dict(os.environ)}  # fmt: skip
    me = (os.getpid(), os.getuid(), os.getgid())
    assert server._refusal(request, me) is None
    assert server._refusal({**request, "code": "/elsewhere/unionfs"}, me) == "another unionfs"
    profiled = {**request, "env": {**os.environ, "UNIONFS_PROFILE": "/tmp/p.json"}}
    assert server._refusal(profiled, me) == "another interpreter or profile setting"
    other = subprocess.Popen(["unshare", "--uts", "sleep", "600"])
    try:
        wait_for("the unshared process", lambda: os.readlink(f"/proc/{other.pid}/ns/uts")
                 != os.readlink("/proc/self/ns/uts"))  # fmt: skip
        reason = server._refusal(request, (other.pid, os.getuid(), os.getgid()))
        assert reason == "another namespace, cgroup, root or capability set"
    finally:
        other.kill()
        other.wait()


def test_the_zygote_leaves_when_idle() -> None:
    env = {**os.environ, client.IDLE_ENV: "5"}
    if zygote_pid() is not None:
        pytest.skip("a zygote of this checkout is running (another test session's)")
    proc = subprocess.Popen([sys.executable, "-m", "unionfs.zygote.server"], env=env)
    try:
        listening = wait_for("the zygote to listen or end",
                             lambda: zygote_pid() == proc.pid or proc.poll() is not None)
        assert listening is True and zygote_pid() == proc.pid  # ours, still there
        assert proc.wait(scaled(60)) == 0  # then gone by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
