"""The zygote (on unless UNIONFS_ZYGOTE=0): a mount handed to a resident pre-imported
process that shows ``ps`` the caller's command line, and every way back to the ordinary
start. Speed is bench's (tools/mount_start.py --zygote)."""

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
from zygoteutil import MARK, stop_marked

from unionfs import livemounts
from unionfs.zygote import client, server

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/fuse"), reason="mounts: root and /dev/fuse"
)


def test_the_zygote_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(client.ENV, raising=False)
    assert client.wanted()
    for on in ("1", "yes", ""):
        monkeypatch.setenv(client.ENV, on)
        assert client.wanted()
    for off in ("0", "no", "off", "false", "False"):
        monkeypatch.setenv(client.ENV, off)
        assert not client.wanted()


def test_only_mounts_go_to_the_zygote() -> None:
    assert client.is_mount_call(["mount", "-o", "lowerdir=/a", "/m"])
    assert client.is_mount_call(["-o", "lowerdir=/a", "/m"])
    assert client.is_mount_call(["-f", "-o", "lowerdir=/a", "/m"])
    assert client.is_mount_call(["/src", "/m", "-o", "lowerdir=/a"])
    assert not client.is_mount_call(["save", "-o", "out.tar", "busybox"])
    assert not client.is_mount_call(["images"])
    assert not client.is_mount_call([])


def test_the_client_imports_nothing_of_unionfs_but_itself_and_no_typing() -> None:
    """Every mount pays for what the console script's first step imports."""
    probe = ("import sys; before = set(sys.modules); import unionfs.zygote.client; "
             "print(' '.join(sorted(set(sys.modules) - before)))")  # fmt: skip
    new = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert [m for m in new if m.startswith("unionfs")] == [
        "unionfs", "unionfs.zygote", "unionfs.zygote.client"
    ]
    assert "typing" not in new


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
    """No UNIONFS_ZYGOTE (the default: on), and no zygote of ours left behind."""
    before = zygote_pid()
    env = {**os.environ, client.IDLE_ENV: "600"}
    env.pop(client.ENV, None)
    yield env
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


def daemon_of(mnt: Path) -> int:
    """The pid serving *mnt* (its record, written once the mount is live)."""
    record = wait_for("the mount's record", lambda: livemounts.live().get(str(mnt)))
    assert isinstance(record, livemounts.Listing)
    return record.pid


def served_by_zygote(mnt: Path) -> bool:
    """Whether a zygote's worker serves *mnt*: its argument area is not on its stack, where
    the kernel puts an exec'd program's but a worker's moved (``zygote.guise``)."""
    with open(f"/proc/{daemon_of(mnt)}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()  # fields[0] is proc(5)'s field 3
    start_stack, arg_start = int(fields[28 - 3]), int(fields[48 - 3])
    assert start_stack and arg_start, "root reads these of any process"
    return arg_start < start_stack


def shown(pid: int) -> tuple[bytes, bytes, list[bytes]]:
    """What ps shows of *pid*: its name, command line and environment (sorted, without the
    zygote's switch)."""
    out = []
    for name in ("comm", "cmdline", "environ"):
        with open(f"/proc/{pid}/{name}", "rb") as f:
            out.append(f.read())
    env = sorted(v for v in out[2].split(b"\0") if not v.startswith(client.ENV.encode() + b"="))
    return out[0], out[1], env


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


def test_a_daemon_through_the_zygote_shows_its_own_command_line(
    env: dict[str, str], layer: Path, tmp_path: Path
) -> None:
    """ps shows a mount started through the zygote as it shows one started without it: the
    same name, command line and environment; the session's sweep stops the zygote alone."""
    mark = f"zygote-cmdline-{os.getpid()}"
    env = {**env, MARK: mark}
    seen = {}
    for side in ("0", "1"):
        mnt = tmp_path / f"mnt{side}"
        mnt.mkdir()
        if side == "1":
            mount(env, "mount", "-o", f"lowerdir={layer}", "/nonexistent-mountpoint-perf-start2")
            wait_for("the zygote", zygote_pid)
        done = mount({**env, client.ENV: side}, "-o", f"lowerdir={layer}", str(mnt))
        assert done.returncode == 0, done.stderr
        try:
            assert served_by_zygote(mnt) is (side == "1")
            seen[side] = shown(daemon_of(mnt))
            if side == "1":
                zygote = zygote_pid()
                assert zygote is not None and stop_marked(mark) == [zygote]
                wait_for("the zygote to end", lambda z=zygote: gone(z))
                assert (mnt / "d" / "f").read_text() == "from the lower\n"  # still served
        finally:
            force_unmount(mnt)
    without, through = seen["0"], seen["1"]
    assert through[1].endswith(b"-o\0lowerdir=%s\0%s\0" % (bytes(layer), bytes(tmp_path / "mnt1")))
    assert through[0] == without[0]
    assert through[1].replace(b"mnt1", b"mnt0") == without[1]
    assert through[2] == without[2]


def test_a_request_too_large_for_the_zygote_mounts_the_ordinary_way(
    env: dict[str, str], layer: Path, tmp_path: Path
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount(env, "mount", "-o", f"lowerdir={layer}", "/nonexistent-mountpoint-perf-start2")
    zygote = wait_for("the zygote", zygote_pid)
    # sent twice (the environment, and the environment ps shows); one string at most 128 KiB
    big = {**env, **{f"UNIONFS_TEST_BIG{i}": "x" * 100_000
                     for i in range(server.MAX_REQUEST // 200_000 + 1)}}  # fmt: skip
    done = mount(big, "-o", f"lowerdir={layer}", str(mnt))
    assert done.returncode == 0, done.stderr
    try:
        assert not served_by_zygote(mnt)
        assert (mnt / "d" / "f").read_text() == "from the lower\n"
    finally:
        force_unmount(mnt)
    assert zygote_pid() == zygote  # and the zygote still serves


def test_with_the_zygote_off_a_mount_starts_itself_and_no_zygote(
    layer: Path, tmp_path: Path
) -> None:
    if zygote_pid() is not None:
        pytest.skip("a zygote of this checkout is running (another test session's)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = mount({**os.environ, client.ENV: "0"}, "-o", f"lowerdir={layer}", str(mnt))
    assert done.returncode == 0, done.stderr
    try:
        assert not served_by_zygote(mnt)
    finally:
        force_unmount(mnt)
    assert zygote_pid() is None


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


def test_a_name_held_by_another_user_is_told_nothing(tmp_path: Path) -> None:
    """The zygote's address is an abstract name: the first to bind it holds it. A caller
    finds whose process listens there and goes to no other user's (which would get its
    environment, stdio and working directory, and name a pid for it to signal)."""
    address = client.address()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the squatter, as nobody: says how many bytes a caller sent it
        try:
            os.close(ready_r)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.bind(address)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            sock.listen(1)  # the listener's credentials are taken here
            os.write(ready_w, b"listening\n")
            conn, _ = sock.accept()
            conn.settimeout(60)
            os.write(ready_w, b"%d\n" % len(conn.recv(1 << 20)))
        except OSError as exc:
            os.write(ready_w, f"{exc}\n".encode())
        os._exit(0)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as said:
        first = said.readline()
        if first != b"listening\n":
            os.waitpid(pid, 0)
            pytest.skip(f"the address is in use here: {first!r}")
        assert client.client(["mount", "-o", f"lowerdir={tmp_path}", str(tmp_path)]) is None
        assert said.readline() == b"0\n"  # the connection closed with nothing sent
    os.waitpid(pid, 0)
