"""Signals to ``unionfs run --runtime PROGRAM`` while the other runtime starts the container.

Until the runtime's ``start`` returns, the process is the runtime's own init, not the
container's command: runc's init is Go, and a forwarded SIGTERM makes it exit 2 even as
PID 1. A fake runtime (``FAKE``, its create/start/delete as runc's) makes that moment
exact: its ``start`` sends the stop signal itself, and fails, as runc does, if the init
died of it.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from patience import scaled

from runtime.containerutil import Runtime

FAKE = """\
import os, signal, sys, time

args = sys.argv[1:]
root = args[args.index("--root") + 1]
command, rest = args[args.index("--log-format") + 2], args[args.index("--log-format") + 3:]
fifo = os.path.join(root, rest[-1] + ".fifo")
pid_file = os.path.join(root, rest[-1] + ".init")
if command == "create":
    os.mkfifo(fifo)
    if os.fork() == 0:  # the init: Go's runtime exits 2 on a SIGTERM it has no use for
        signal.signal(signal.SIGTERM, lambda *_: os._exit(2))
        with open(pid_file + ".new", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pid_file + ".new", pid_file)
        fd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)  # until start opens the other end
        os.write(fd, b"0")
        os.execv("/bin/sleep", ["sleep", "60"])
    while not os.path.exists(pid_file):
        time.sleep(0.01)
    with open(rest[rest.index("--pid-file") + 1], "w") as f:
        f.write(open(pid_file).read())
elif command == "start":
    pid = int(open(pid_file).read())
    os.kill(os.getppid(), signal.SIGTERM)  # the stop, while `unionfs run` waits for us
    time.sleep(0.5)  # room for a forwarded signal to land (old behaviour), not a wait
    with open(f"/proc/{pid}/stat") as f:
        if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
            sys.exit("container not running")
    with open(fifo, "rb") as f:
        f.read()  # to its end: the init's end closes when it execs
elif command == "delete" and os.path.exists(fifo):
    os.unlink(fifo)
"""


def test_a_stop_during_the_runtimes_start_waits_for_the_command_then_stops_it(
    tmp_path: Path, busybox_rootfs: Path
) -> None:
    fake = tmp_path / "fake-oci"
    fake.write_text(f"#!{sys.executable}\n{FAKE}")
    fake.chmod(0o755)
    runtime = Runtime(tmp_path / "home", oci_runtime=str(fake))
    proc = runtime.start(
        "run", "--rm", "--stop-timeout", "0.2", "--rootfs", str(busybox_rootfs), "true"
    )
    _, err = proc.communicate(timeout=scaled(60))
    # kept until the command ran, then forwarded to it (the fake's sleep, not PID 1 of
    # a namespace, dies of it): 143, never the init's 2
    assert proc.returncode == 128 + signal.SIGTERM, err
