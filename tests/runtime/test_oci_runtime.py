"""The OCI runtime command line, side by side with runc: the same calls, the same answers.

Every lifecycle test runs once with ``unionfs-runtime`` and once with runc (the reference:
a test that fails on runc is wrong, not runc), against a bundle of busybox.
"""

from __future__ import annotations

import array
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from patience import Deadline, scaled

from runtime.ocitest import OURS, OciRuntime, alive, make_bundle, wait_stopped

HOOK = "#!/bin/sh\ncat > {out}.$$; mv {out}.$$ {out}\n"


def test_create_waits_before_the_program_and_start_runs_it(
    oci: OciRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["sh", "-c", "echo ran > /ran; "
                                                          "echo out; exec sleep 1000"])  # fmt: skip
    pid_file = tmp_path / "pid"
    cid = oci.create(bundle, "--pid-file", str(pid_file))
    state = oci.state(cid)
    assert state["status"] == "created" and state["id"] == cid
    assert state["bundle"] == str(bundle) and state["pid"] == int(pid_file.read_text())
    assert isinstance(state["pid"], int) and alive(state["pid"])
    assert not (bundle / "rootfs/ran").exists()  # set up, but not the user's program yet
    oci.ok("start", cid)
    assert oci.state(cid)["status"] == "running"
    assert oci("start", cid).returncode != 0  # only once
    deleting = oci("delete", cid)
    assert deleting.returncode != 0 and "running" in deleting.stderr + deleting.stdout
    oci.ok("kill", cid, "KILL")
    wait_stopped(oci, cid)
    assert oci.state(cid)["status"] == "stopped"
    assert (bundle / "rootfs/ran").read_text() == "ran\n"
    assert (bundle / "out").read_text() == "out\n"
    oci.ok("delete", cid)
    assert oci("state", cid).returncode != 0


def test_a_created_container_is_deleted_only_with_force(oci: OciRuntime, tmp_path: Path,
                                                        busybox_rootfs: Path) -> None:  # fmt: skip
    """runtime-spec: delete of a container that is not stopped MUST be an error and have no
    effect; runc 1.1 deletes a created one all the same."""
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["sh", "-c", "echo ran > /ran"])
    cid = oci.create(bundle)
    pid = oci.state(cid)["pid"]
    if oci.name == "unionfs":
        assert oci("delete", cid).returncode != 0 and oci.state(cid)["status"] == "created"
    oci.ok("delete", "--force", cid) if oci.name == "unionfs" else oci.ok("delete", cid)
    assert isinstance(pid, int) and not alive(pid)
    assert not (bundle / "rootfs/ran").exists()


def test_kill_signals_by_name_and_number_and_all(oci: OciRuntime, tmp_path: Path,
                                                 busybox_rootfs: Path) -> None:  # fmt: skip
    script = "trap 'echo usr1 >> /got' USR1; trap 'echo term >> /got; exit 3' TERM; " \
             "sleep 1000 & echo $! > /child; while true; do wait; done"  # fmt: skip
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["sh", "-c", script])
    cid = oci.create(bundle)
    oci.ok("start", cid)
    got = bundle / "rootfs/got"
    deadline = Deadline(60)
    while not (bundle / "rootfs/child").exists():
        assert not deadline.expired(), f"the container did not start its child in {deadline}"
        time.sleep(0.02)
    oci.ok("kill", cid, "SIGUSR1")
    while not got.exists() and not deadline.expired():
        oci.ok("kill", cid, "USR1")  # the trap may not be set the first time
        time.sleep(0.05)
    oci.ok("kill", "--all", cid, str(int(signal.SIGTERM)))
    wait_stopped(oci, cid)
    assert "term" in got.read_text().split()
    assert oci("kill", cid, "KILL").returncode != 0  # stopped: nothing to signal
    oci.ok("delete", cid)


def test_exec_with_a_process_file_and_inline(oci: OciRuntime, tmp_path: Path,
                                             busybox_rootfs: Path) -> None:  # fmt: skip
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["sleep", "1000"], hostname="ocibox")
    cid = oci.create(bundle)
    oci.ok("start", cid)
    process = {"args": ["sh", "-c", "hostname; id -u; echo $X; exit 4"], "cwd": "/tmp",
               "env": ["PATH=/bin", "X=from-file"], "user": {"uid": 1, "gid": 1}}  # fmt: skip
    (tmp_path / "process.json").write_text(json.dumps(process))
    done = oci("exec", "--process", str(tmp_path / "process.json"), cid)
    assert (done.returncode, done.stdout) == (4, "ocibox\n1\nfrom-file\n"), done.stderr
    done = oci("exec", "--env", "Y=inline", "--cwd", "/tmp", cid, "sh", "-c", "echo $Y; pwd")
    assert (done.returncode, done.stdout) == (0, "inline\n/tmp\n"), done.stderr
    pid_file = tmp_path / "exec.pid"
    detached = subprocess.run(oci.argv("exec", "--detach", "--pid-file", str(pid_file), cid,
                                       "sleep", "1000"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=scaled(120), check=False)  # fmt: skip
    assert detached.returncode == 0  # (its output is the process's: not a pipe to wait on)
    assert alive(int(pid_file.read_text()))
    ps = json.loads(oci.ok("ps", "--format", "json", cid))
    assert int(pid_file.read_text()) in ps and oci.state(cid)["pid"] in ps
    oci.ok("delete", "--force", cid)
    assert not alive(int(pid_file.read_text()))


def test_a_missing_program_fails_create_with_127s_message(
    oci: OciRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["no-such-program"])
    done = oci("create", "--bundle", str(bundle), "utest-oci-missing")
    assert done.returncode != 0
    assert "no-such-program" in done.stderr  # runc escapes the quotes: logrus's text format
    assert "executable file not found in $PATH" in done.stderr
    assert oci("state", "utest-oci-missing").returncode != 0


def test_hooks_run_in_order_with_the_state_on_stdin(oci: OciRuntime, tmp_path: Path,
                                                    busybox_rootfs: Path) -> None:  # fmt: skip
    out = tmp_path / "hooks"
    out.mkdir()
    hooks = {}
    for kind in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        script = tmp_path / f"{kind}.sh"
        script.write_text(HOOK.format(out=out / kind))
        script.chmod(0o755)
        hooks[kind] = [{"path": str(script), "args": [kind]}]
    # startContainer runs in the container, after pivot_root: a path in its root
    hooks["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /started"]}]
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["true"], hooks=hooks,
                         annotations={"org.example.k": "v"})  # fmt: skip
    cid = oci.create(bundle)
    created = {p.name for p in out.iterdir()}
    # runc 1.1 runs the poststart hooks at create already (fixed in runc 1.2)
    assert created - {"poststart"} == {"prestart", "createRuntime", "createContainer"}
    assert oci.name == "runc" or "poststart" not in created
    assert not (bundle / "rootfs/started").exists()
    for kind in ("prestart", "createRuntime"):
        state = json.loads((out / kind).read_text())
        assert state["id"] == cid and state["bundle"] == str(bundle)
        assert state["pid"] == oci.state(cid)["pid"]
        assert state["annotations"] == {"org.example.k": "v"}
    oci.ok("start", cid)
    assert json.loads((bundle / "rootfs/started").read_text())["id"] == cid
    assert json.loads((out / "poststart").read_text())["id"] == cid
    wait_stopped(oci, cid)
    oci.ok("delete", cid)
    assert json.loads((out / "poststop").read_text())["id"] == cid


def test_a_failing_poststart_hook_is_a_warning_and_the_next_hooks_run(
    oci: OciRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    out = tmp_path / "after"
    hooks = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]},
                    {"path": "/bin/sh", "args": ["sh", "-c", f"echo {kind} >> {out}"]}]
             for kind in ("poststart", "poststop")}  # fmt: skip
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["true"], hooks=hooks)
    if oci.name == "runc":  # runc 1.1 runs poststart at create, and a failure fails it
        assert oci("create", "--bundle", str(bundle), "utest-oci-poststart").returncode != 0
        return
    cid = oci.create(bundle)
    oci.ok("start", cid)
    wait_stopped(oci, cid)
    oci.ok("delete", cid)
    assert out.read_text() == "poststart\npoststop\n"


def test_a_failing_create_runtime_hook_fails_create_and_leaves_nothing(
    oci: OciRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    hooks = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 7"]}]}
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["true"], hooks=hooks)
    done = oci("create", "--bundle", str(bundle), "utest-oci-hookfail")
    assert done.returncode != 0
    assert oci("state", "utest-oci-hookfail").returncode != 0


def test_the_console_socket_gets_the_pty_master(oci: OciRuntime, tmp_path: Path,
                                               busybox_rootfs: Path) -> None:  # fmt: skip
    bundle = make_bundle(tmp_path / "b", busybox_rootfs, ["sh", "-c", "tty; echo on-pty"],
                         process__terminal=True)  # fmt: skip
    path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        cid = oci.create(bundle, "--console-socket", path)
        conn, _ = listener.accept()
        with conn:
            fds = array.array("i")
            _msg, ancdata, _flags, _addr = conn.recvmsg(1024, socket.CMSG_SPACE(4))
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - len(data) % 4])
    assert len(fds) == 1
    master = fds[0]
    try:
        oci.ok("start", cid)
        seen = b""
        while b"on-pty" not in seen:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        assert b"/dev/pts/0" in seen and b"on-pty" in seen, seen
    finally:
        os.close(master)
    wait_stopped(oci, cid)
    oci.ok("delete", cid)


def test_features_version_and_refusals(tmp_path: Path) -> None:
    def ours(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([OURS, "--root", str(tmp_path), *args], capture_output=True,
                              text=True, check=False)  # fmt: skip

    features = json.loads(ours("features").stdout)
    assert "createRuntime" in features["hooks"] and "rbind" in features["mountOptions"]
    assert "pid" in features["linux"]["namespaces"] and features["linux"]["seccomp"]["enabled"]
    assert ours("--version").stdout.startswith("unionfs-runtime version ")
    same = subprocess.run([sys.executable, "-m", "unionfs", "oci", "--version"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert same.stdout == ours("--version").stdout  # `unionfs oci` is the same program
    usage = ours("kill")
    assert usage.returncode == 2 and usage.stderr == (
        "unionfs-runtime: kill: the following arguments are required: ID\n")
    refused = ours("--systemd-cgroup", "state", "x")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "--systemd-cgroup is not supported" in refused.stderr
    log = tmp_path / "log.json"
    missing = ours("--log", str(log), "--log-format", "json", "state", "nope")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert json.loads(log.read_text())["level"] == "error"


PROBE = """
echo "== id"; id
echo "== cwd"; pwd
echo "== env"; env | grep -E '^(X|PATH)=' | sort
echo "== limits"; ulimit -n; ulimit -c
echo "== umask"; umask
echo "== oom"; cat /proc/self/oom_score_adj
echo "== sysctl"; cat /proc/sys/net/ipv4/ip_forward
echo "== status"; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status
echo "== hostname"; hostname
echo "== root"; touch /x 2>&1 | sed 's/.*: //'
echo "== masked"; cat /proc/kcore 2>&1 | wc -c; ls /sys/firmware | wc -l
echo "== readonly"; echo 1 2>&1 > /proc/sys/kernel/ns_last_pid | sed 's/.*: //'
echo "== tmpfs"; stat -c '%a' /mnt/t; touch /mnt/t/f && echo writable
echo "== bind"; cat /mnt/ro/hello; touch /mnt/ro/x 2>&1 | sed 's/.*: //'
echo "== devices"; for d in null zero full random urandom tty console ptmx; do
  [ -e /dev/$d ] && echo $d; done
echo "== mounts"; awk '{ print $5, $(NF-2) }' /proc/self/mountinfo | sort
"""


def test_inside_the_container_it_is_as_runc_makes_it(tmp_path: Path,
                                                     busybox_rootfs: Path) -> None:  # fmt: skip
    """What runtime-tools' runtimetest checks from inside (user, groups, cwd, env, rlimits,
    umask, oomScoreAdj, sysctl, capabilities, no_new_privs, hostname, a read-only root,
    masked and read-only paths, mounts with their options, the default devices): the same
    bundle under runc and ours shows the same."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed (./dev.sh setup installs it)")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("hi\n")
    seen = {}
    for name, program in (("runc", runc), ("unionfs", OURS)):
        rt = OciRuntime(program, tmp_path / f"{name}-state")
        bundle = make_bundle(
            tmp_path / name, busybox_rootfs, ["sh", "-c", PROBE], hostname="inside",
            process__user={"uid": 1000, "gid": 1000, "additionalGids": [5, 6], "umask": 23},
            process__cwd="/tmp", process__env=["PATH=/bin:/usr/bin", "X=1"],
            process__rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                              {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
            process__oomScoreAdj=100, linux__sysctl={"net.ipv4.ip_forward": "1"},
            mounts=[{"destination": "/proc", "type": "proc", "source": "proc"},
                    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                 "mode=0620"]},
                    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                     "options": ["nosuid", "noexec", "nodev", "ro"]},
                    {"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
                     "options": ["size=1m", "mode=700", "nosuid"]},
                    {"destination": "/mnt/ro", "type": "bind", "source": str(shared),
                     "options": ["rbind", "ro"]}],
        )  # fmt: skip
        config = json.loads((bundle / "config.json").read_text())
        config["root"]["readonly"] = True
        (bundle / "config.json").write_text(json.dumps(config))
        try:
            cid = rt.create(bundle)
            rt.ok("start", cid)
            wait_stopped(rt, cid)
            rt.ok("delete", cid)
        finally:
            assert rt.cleanup() == []
        seen[name] = sections((bundle / "out").read_text() + (bundle / "err").read_text())
    # runc makes the device nodes in /dev's tmpfs; we bind the host's (each then a mount of
    # its own, of devtmpfs), so /dev/null over a masked file is devtmpfs too
    bound = {f"/dev/{node} devtmpfs" for node in ("null", "zero", "full", "random", "urandom",
                                                  "tty")}  # fmt: skip
    seen["unionfs"]["mounts"] = [m.replace(" devtmpfs", " tmpfs") for m in
                                 seen["unionfs"]["mounts"] if m not in bound]  # fmt: skip
    assert seen["unionfs"] == seen["runc"]


def sections(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for block in text.split("== ")[1:]:
        title, *lines = block.splitlines()
        found[title] = lines
    return found


CGROUP_FILES = (("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
                ("memory", "memory.soft_limit_in_bytes"), ("memory", "memory.swappiness"),
                ("memory", "memory.oom_control"), ("cpu", "cpu.shares"),
                ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"),
                ("cpuset", "cpuset.cpus"), ("cpuset", "cpuset.mems"),
                ("pids", "pids.max"))  # fmt: skip


def cgroup_values(pid: int) -> dict[str, str]:
    """The v1 settings of process *pid*'s cgroups (the files that exist here)."""
    own = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            own[controller] = path
    found = {}
    for controller, name in CGROUP_FILES:
        path = Path("/sys/fs/cgroup", controller, own.get(controller, "/").lstrip("/"), name)
        if path.exists():
            found[name] = path.read_text().split("\n")[0]  # oom_control: oom_kill_disable N
    return found


def test_the_cgroup_settings_are_runcs(tmp_path: Path, busybox_rootfs: Path) -> None:
    """memory (limit, swap, reservation, swappiness, disableOOMKiller), cpu (shares, quota,
    period, cpus, mems) and pids, as runc writes them into the cgroupfs (runtime-tools'
    linux_cgroups_* checks). Not started: create has made and filled the cgroups."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed (./dev.sh setup installs it)")
    resources = {"memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20,
                            "swappiness": 10, "disableOOMKiller": True},
                 "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0",
                         "mems": "0"},
                 "pids": {"limit": 100}}  # fmt: skip
    seen = {}
    for name, program in (("runc", runc), ("unionfs", OURS)):
        rt = OciRuntime(program, tmp_path / f"{name}-state")
        bundle = make_bundle(tmp_path / name, busybox_rootfs, ["true"],
                             linux__resources=resources)  # fmt: skip
        try:
            cid = rt.create(bundle)
            pid = rt.state(cid)["pid"]
            assert isinstance(pid, int)
            seen[name] = cgroup_values(pid)
            rt.ok("delete", "--force", cid)
        finally:
            assert rt.cleanup() == []
    assert seen["unionfs"] == seen["runc"]
    assert seen["unionfs"]["cpu.shares"] == "512" and seen["unionfs"]["pids.max"] == "100"
