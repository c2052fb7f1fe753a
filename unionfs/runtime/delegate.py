"""``unionfs run --runtime runc|crun|PATH``: the container on our union, set up by another
OCI runtime, driven through its command line as podman drives it (create, start, delete).

``run`` mounts the union and registers the container as ever; then, instead of our helper
and plan, this module writes the bundle (``bundle.config``: the same spec, said in
runtime-spec terms), has the runtime create the container (its stdio ours, or a pty whose
master comes back over a console socket), waits for its process as its subreaper
(forwarding signals, relaying output, the cgroup's OOM count read before the runtime's
``delete``), and leaves the runtime's own state under the container's directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import typing

from unionfs.errors import UserError
from unionfs.runtime import bundle, cgroups, placement
from unionfs.runtime import namespaces as ns
from unionfs.runtime.helper import SETUP_FAILED, StepError
from unionfs.runtime.proxy import Child, SignalProxy, exit_code, process_start
from unionfs.runtime.spec import RunSpec
from unionfs.runtime.state import ContainerDirs, State
from unionfs.runtime.stdio import Streams


class Registration(typing.Protocol):
    """What ``run`` knows of the container it runs (``run.Registration``)."""

    state: State
    dirs: ContainerDirs

    def update(self, **changes: object) -> None: ...

TIMEOUT = 300.0  # one runtime command; generous: the machine may be busy


def program_path(name: str) -> str:
    found = shutil.which(name) if "/" not in name else (name if os.access(name, os.X_OK)
                                                          else None)  # fmt: skip
    if found is None:
        raise UserError(f"--runtime {name}: no such program (install it, or give its path)")
    return os.path.abspath(found)


class Runtime:
    """Another runtime's command line, with its state below *root*."""

    def __init__(self, program: str, root: str) -> None:
        self.program = program
        self.root = root
        self.log = os.path.join(root, "log.json")

    def _run(self, *args: str, stdio: tuple[int, int, int] | None = None) -> None:
        argv = [self.program, "--root", self.root, "--log", self.log, "--log-format",
                "json", *args]  # fmt: skip
        if stdio is None:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=TIMEOUT, check=False)  # fmt: skip
        else:  # the container's stdio is the runtime's: what it says on stderr is shown
            done = subprocess.run(argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                                  timeout=TIMEOUT, check=False)  # fmt: skip
        if done.returncode != 0:
            said = self._last_error() or (done.stderr or b"").decode(errors="replace").strip()
            name = f"{os.path.basename(self.program)} {args[0]}"
            # with our stdio, it has said why on stderr already
            raise StepError(_code(said), f"{name} failed" if stdio else f"{name}: {said}")

    def _last_error(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return ""
        for line in reversed(lines):
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(line)
                if entry.get("level") == "error":
                    return str(entry.get("msg", ""))
        return ""

    def create(self, bundle_dir: str, container_id: str, pid_file: str,
               console_socket: str | None, stdio: tuple[int, int, int]) -> None:  # fmt: skip
        extra = ["--console-socket", console_socket] if console_socket else []
        self._run("create", "--bundle", bundle_dir, "--pid-file", pid_file, *extra,
                  container_id, stdio=stdio)  # fmt: skip

    def start(self, container_id: str) -> None:
        self._run("start", container_id)

    def delete(self, container_id: str) -> None:
        """Remove the container, if the runtime has it (a failed create may have left
        none, or half a one: runc then says it does not exist)."""
        try:
            self._run("delete", "--force", container_id)
        except StepError:
            if os.path.exists(os.path.join(self.root, container_id)):
                raise


def _code(said: str) -> int:
    """As podman maps a runtime's error: 127 not found, 126 not executable, else 125."""
    if re.search(r"executable file not found|no such file or directory", said):
        return 127
    if "permission denied" in said.lower():
        return 126
    return SETUP_FAILED


def _receive_pty(listener: socket.socket) -> int:
    conn, _ = listener.accept()
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    if len(fds) != 1:
        raise StepError(SETUP_FAILED, "the runtime sent no terminal to the console socket")
    return fds[0]


def start_and_wait(spec: RunSpec, container: Registration, proxy: SignalProxy,
                   cleanup: contextlib.ExitStack, cgroup: cgroups.Cgroup, program: str,
                   host_devices: tuple[str, ...] = ()) -> int:  # fmt: skip
    """The rest of ``run``/``start`` once the union is mounted at the container's rootfs;
    *host_devices*: the host's device nodes to list in the bundle (--privileged)."""
    state = container.state
    paths = container.dirs.paths(state.id)
    runtime = Runtime(program_path(program), os.path.join(paths.dir, "runtime"))
    os.makedirs(runtime.root, 0o700, exist_ok=True)
    bundle_dir = os.path.join(paths.dir, "bundle")
    os.makedirs(bundle_dir, 0o700, exist_ok=True)
    config = bundle.config(spec, paths.rootfs, f"unionfs-{state.id}", host_devices)
    with open(os.path.join(bundle_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    streams = Streams(spec.process.interactive, spec.process.terminal)
    cleanup.callback(streams.close)
    listener = None
    console = os.path.join(paths.dir, "console.sock")
    if spec.process.terminal:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cleanup.callback(listener.close)
        listener.bind(console)
        listener.listen(1)
    ns.prctl(ns.PR_SET_CHILD_SUBREAPER, 1)  # the runtime's init process becomes ours
    pid_file = os.path.join(paths.dir, "runtime.pid")
    # After the runtime's delete (which should remove them), the cgroups named for this
    # container are removed if still there: a failed create can leave some behind.
    cleanup.callback(lambda: placement.named(f"unionfs-{state.id}").remove())
    runtime.delete(state.id)  # what a killed `unionfs run` of this container left
    cleanup.callback(runtime.delete, state.id)
    runtime.create(bundle_dir, state.id, pid_file, console if listener else None,
                   streams.child_fds())  # fmt: skip
    streams.started()
    with open(pid_file, encoding="ascii") as f:
        pid = int(f.read().strip())
    child = Child(pid)
    cleanup.callback(child.kill_and_reap)
    if listener is not None:
        streams.set_pty(_receive_pty(listener))
        proxy.on_winch = streams.resize
    proxy.check()  # a stop asked for during create: the container never starts
    # Signals reach the process only once `start` has returned. Until then the process is
    # the runtime's own init (runc's is Go: a forwarded SIGTERM makes it exit 2, PID 1 or
    # not); `runc start` returns only when the init has exec'd the container's command
    # (it reads the exec FIFO to its end, and the init's end closes on exec). A stopping
    # signal meanwhile is kept, and forwarded once `start` has returned: by then the
    # command runs (and may have said it is ready: the signal is its to handle).
    try:
        runtime.start(state.id)
    except StepError:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:  # the process is still there: the start failed
            raise
        code = exit_code(status)  # it died before it ran: its end is the answer
    else:
        proxy.attach_running(pid)
        container.update(status="running", pid=pid, pid_start=process_start(pid),
                         namespaces=spec.namespaces, process=spec.process)  # fmt: skip
        code = proxy.wait(pid, streams.relay)
    streams.restore()
    child.reaped = True
    oom = (cgroup.stats().oom_kills or 0) > 0
    container.update(status="exited", exit_code=code, oom_killed=oom, finished=time.time())
    return code
