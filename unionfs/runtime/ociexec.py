"""``exec`` of the OCI lifecycle: another process in a created or running container.

The process comes whole from ``--process FILE`` (an OCI process object, as podman passes
it) or from the container's own with changes (runc's inline form); either way it gets the
container's seccomp filter, as runc applies it. ``plan.exec_plan`` joins the container's
namespaces and cgroups. ``--detach`` returns once the program runs (its pid in
``--pid-file``; it is then the caller's to reap, as under runc); otherwise this process
waits for it, relaying a terminal or the stdio, forwarding signals, and exits as it did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

from unionfs.errors import UserError
from unionfs.runtime import cgroups, console, plan
from unionfs.runtime import namespaces as ns
from unionfs.runtime.enter import with_user_namespace
from unionfs.runtime.helper import Helper, StepError, raise_if_error
from unionfs.runtime.ocistate import Root, status, write_pid_file
from unionfs.runtime.proxy import Child, SignalProxy
from unionfs.runtime.run import attach_pty, supervised
from unionfs.runtime.spec import Process
from unionfs.runtime.stdio import Streams


@dataclasses.dataclass(frozen=True, slots=True)
class ExecOptions:
    detach: bool = False
    pid_file: str | None = None
    console_socket: str | None = None


def exec_process(root: Root, container_id: str, process: Process,
                 options: ExecOptions) -> int:  # fmt: skip
    container = root.load(container_id)
    now = status(container)
    if now not in ("created", "running") or container.pid is None:
        raise UserError(f"cannot exec in container {container_id}: it is {now}")
    if process.terminal and options.detach and options.console_socket is None:
        raise UserError("a detached exec with a terminal needs --console-socket")
    spec = root.load_spec(container_id)
    process = dataclasses.replace(process, seccomp=spec.process.seccomp)
    pid = container.pid
    steps = plan.exec_plan(pid, with_user_namespace(pid, spec.namespaces), process)
    cgroup = cgroups.from_record(dict(container.cgroup))
    if options.detach:
        return _detached(steps, cgroup, options)
    proxy = SignalProxy(stop_timeout=-1)  # forwarded signals only: no stop timer

    def body(cleanup: contextlib.ExitStack) -> int:
        ns.prctl(ns.PR_SET_CHILD_SUBREAPER, 1)  # the process is the helper's child
        streams = Streams(True, process.terminal and options.console_socket is None)
        cleanup.callback(streams.close)
        helper = Helper(streams.child_fds())
        cleanup.callback(helper.close)
        streams.started()
        helper.send_plan(steps)
        child = Child(helper.child_pid())
        cleanup.callback(child.kill_and_reap)
        cgroup.add(child.pid)
        proxy.attach(child.pid)
        helper.go("cgroup")
        helper.finish()
        if options.console_socket is not None and helper.pty is not None:
            master = helper.take_pty()
            assert master is not None
            try:
                console.send_master(options.console_socket, master)
            finally:
                os.close(master)
        attach_pty(helper, streams, proxy)
        if options.pid_file is not None:
            write_pid_file(options.pid_file, child.pid)
        code = proxy.wait(child.pid, streams.relay)
        streams.restore()
        child.reaped = True
        return code

    return supervised(proxy, body)


def _detached(steps: tuple[plan.Step, ...], cgroup: cgroups.Cgroup,
              options: ExecOptions) -> int:  # fmt: skip
    """Start the process with our stdio and leave it running; its pid goes to the file."""
    helper = Helper((0, 1, 2))
    try:
        helper.send_plan(steps)
        pid = helper.child_pid()
        try:
            cgroup.add(pid)
            helper.go("cgroup")
            while True:
                message, fds = helper.channel.recv_fds()
                if message == b"pty" and len(fds) == 1 and options.console_socket:
                    try:
                        console.send_master(options.console_socket, fds[0])
                    finally:
                        os.close(fds[0])
                    continue
                for fd in fds:
                    os.close(fd)
                if not message:
                    break  # exec'd (the channel was close-on-exec)
                raise_if_error(message)
                raise StepError(125, f"unexpected message from the process: {message!r}")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            raise
        if options.pid_file is not None:
            write_pid_file(options.pid_file, pid)
    finally:
        helper.close()
    return 0
