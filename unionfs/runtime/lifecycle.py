"""The OCI lifecycle, runc's way: ``create`` sets a container up and leaves its process
waiting right before the exec of the user's program; ``start`` lets it go; ``state``,
``kill``, ``delete``. A front end's piece (``unionfs oci`` uses it; a podman-like CLI can).

Each call is a short-lived process: what lasts is the record under the root (``ocistate``)
and the container's process, which is not our child (its caller, e.g. conmon, is the
subreaper that inherits it). The bundle's root is used as it is: no FUSE mount here. The
set-up is ``plan.run_plan`` with a ``Lifecycle``, performed by the same executor as
``unionfs run``. Functions raise ``UserError`` or ``StepError``; a failed ``create`` leaves
nothing (process, cgroups, record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal
import socket
import sys
import time
import typing

from unionfs.errors import UserError
from unionfs.runtime import cgroups, jsonvalues
from unionfs.runtime.helper import MAX_MESSAGE, raise_if_error
from unionfs.runtime.ocistate import (
    Container,
    Root,
    document,
    in_user_namespace,
    status,
    write_pid_file,
)
from unionfs.runtime.proxy import process_start

if typing.TYPE_CHECKING:  # create's own imports come when it runs: start, kill, delete and
    # state run for every container podman runs, and need none of them
    from unionfs.runtime.helper import Helper
    from unionfs.runtime.hooks import Hooks
    from unionfs.runtime.spec import RunSpec

GONE_TIMEOUT = 30.0  # after SIGKILL, a process is gone in far less, however busy the host


def warn(message: str) -> None:
    print(f"unionfs-runtime: warning: {message}", file=sys.stderr)


def _cgroup(spec: RunSpec, container_id: str) -> tuple[RunSpec, cgroups.Cgroup]:
    """The container's cgroups, made (at linux.cgroupsPath, else unionfs-ID below ours).
    In a user namespace (rootless) device rules are dropped, as runc drops them (what a
    user namespace mounts is nodev), and without a delegated cgroup there is none, unless
    limits were asked for."""
    from unionfs.runtime import placement

    rootless = in_user_namespace() or os.geteuid() != 0
    if rootless:
        resources = dataclasses.replace(spec.resources, devices=None)
        spec = dataclasses.replace(spec, resources=resources)
    cgroup = placement.at_path(spec.cgroups_path or f"unionfs-{container_id}", spec.resources)
    dirs = cgroup.dirs.values() if isinstance(cgroup, cgroups.V1Cgroup) else (
        [cgroup.path] if isinstance(cgroup, cgroups.V2Cgroup) else [])  # fmt: skip
    try:
        for path in dirs:  # missing parents too: runc makes them (and leaves them)
            os.makedirs(os.path.dirname(path), exist_ok=True)
        cgroup.create()
    except (UserError, PermissionError):
        if not rootless or spec.resources.controllers():
            raise
        # Silently, as runc: a caller (conmon) takes what a runtime says on stderr for
        # the reason of a failure.
        return spec, cgroups.NoCgroup()
    return spec, cgroup


def wait_gone(pid: int, timeout: float = GONE_TIMEOUT) -> None:
    """Wait until *pid* (not necessarily our child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise UserError(f"process {pid} did not exit within {timeout:.0f} s of SIGKILL")
    finally:
        os.close(fd)


def _kill(container: Container) -> None:
    if status(container) in ("created", "running") and container.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(container.pid, signal.SIGKILL)
        wait_gone(container.pid)


def _bind_start_socket(directory: str) -> socket.socket:
    """The socket ``start`` connects to: ``start.sock`` in the container's directory
    (named through an fd, so that a long --root does not overflow sun_path)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dirfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        listener.bind(f"/proc/self/fd/{dirfd}/start.sock")
    finally:
        os.close(dirfd)
    listener.listen(1)
    return listener


def create(root: Root, container_id: str, bundle: str, pid_file: str | None = None,
           console_socket: str | None = None) -> Container:  # fmt: skip
    """Set the container up from BUNDLE/config.json and leave its process waiting."""
    from unionfs.runtime import child, oci, plan
    from unionfs.runtime.helper import Helper
    from unionfs.runtime.run import cgroup_dirs, check_host_paths, with_standard_devices

    bundle = os.path.abspath(bundle)
    spec = oci.load(bundle, None, False, interactive=True)
    if spec.process.terminal and console_socket is None:
        raise UserError("process.terminal is true: give --console-socket (the pty's master "
                        "is sent there)")  # fmt: skip
    rootfs = check_host_paths(spec)
    directory = root.make(container_id)
    with contextlib.ExitStack() as always, contextlib.ExitStack() as undo:
        undo.callback(root.remove, container_id)
        spec, cgroup = _cgroup(spec, container_id)
        undo.callback(cgroup.remove)
        cgroup.set_limits(with_standard_devices(spec.resources))
        listener = _bind_start_socket(directory)
        always.callback(listener.close)
        lifecycle = plan.Lifecycle(listener.fileno(), spec.hooks)
        steps = plan.run_plan(spec, rootfs, cgroup_dirs(cgroup), (), lifecycle)
        # forked, not a fresh Python: this process is single-threaded (never pyfuse3's)
        helper = Helper((0, 1, 2), pass_fds=(listener.fileno(),), fork=child.serve)
        always.callback(helper.close)
        helper.send_plan(steps)
        pid = helper.child_pid()
        later = spec.hooks.poststart or spec.hooks.poststop
        container = Container(container_id, bundle, spec.rootfs, time.time(), "creating", pid,
                              process_start(pid), tuple(cgroup.record().items()),
                              spec.annotations,
                              json.dumps(jsonvalues.dump(spec.hooks)) if later else "")  # fmt: skip
        undo.callback(_kill, dataclasses.replace(container, status="created"))
        root.save_spec(container_id, spec)
        root.save(container)
        cgroup.add(pid)
        helper.go("cgroup")
        _until_ready(helper, container, spec.hooks, console_socket)
        if pid_file is not None:
            write_pid_file(pid_file, pid)
        container = dataclasses.replace(container, status="created")
        root.save(container)
        undo.pop_all()
    return container


def _until_ready(helper: Helper, container: Container, given: Hooks,
                 console_socket: str | None) -> None:  # fmt: skip
    """Serve the container's process until it waits for ``start``: run the runtime's
    hooks when it asks, pass its pty on."""
    from unionfs.runtime import console, hooks

    while True:
        message, fds = helper.channel.recv_fds()
        if message == b"pty" and len(fds) == 1 and console_socket is not None:
            try:
                console.send_master(console_socket, fds[0])
            finally:
                os.close(fds[0])
            continue
        for fd in fds:
            os.close(fd)
        if message == b"ready hooks":
            state = json.dumps(document(container, "creating"))
            try:
                hooks.run_all(given.prestart + given.create_runtime, state)
            except hooks.HookFailed as exc:
                raise UserError(exc.message) from None
            helper.channel.send(f"go hooks {state}")
            continue
        if message == b"ready start":
            return
        if not message:
            raise UserError("the container's process ended while it was being set up")
        raise_if_error(message)
        raise UserError(f"unexpected message from the container's process: {message!r}")


def start(root: Root, container_id: str) -> None:
    """Let a created container's process exec the user's program; then poststart hooks."""
    container = root.load(container_id)
    now = status(container)
    if now != "created":
        raise UserError(f"cannot start container {container_id}: it is {now}, not created")
    directory = root.dir(container_id)
    dirfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            try:
                sock.connect(f"/proc/self/fd/{dirfd}/start.sock")
                os.unlink(f"/proc/self/fd/{dirfd}/start.sock")  # one start only
            except (FileNotFoundError, ConnectionRefusedError):
                raise UserError(f"cannot start container {container_id}: its process is not "
                                "waiting (started already, or gone)") from None  # fmt: skip
            if sock.recv(MAX_MESSAGE) != b"started":
                raise UserError(f"cannot start container {container_id}: it was started "
                                "by another call")  # fmt: skip
            message = sock.recv(MAX_MESSAGE)
    finally:
        os.close(dirfd)
    raise_if_error(message)  # a startContainer hook or the exec itself failed
    container = dataclasses.replace(container, status="running")
    root.save(container)
    _later_hooks(container, "poststart", document(container, "running"))


def kill(root: Root, container_id: str, signum: int, all_processes: bool = False) -> None:
    container = root.load(container_id)
    now = status(container)
    if now not in ("created", "running") or container.pid is None:
        raise UserError(f"container {container_id} is not running ({now})")
    pids = [container.pid]
    if all_processes:
        pids += cgroups.from_record(dict(container.cgroup)).procs()
    for pid in dict.fromkeys(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def delete(root: Root, container_id: str, force: bool = False) -> None:
    """Remove a stopped (or, with *force*, any) container: its process and what is left
    in its cgroups are killed, the cgroups removed, the poststop hooks run (each: a
    failure is a warning)."""
    directory = root.dir(container_id)
    if not os.path.exists(os.path.join(directory, "state.json")):
        if os.path.isdir(directory):  # a create that was itself killed half-way
            root.remove(container_id)
            return
        if force:
            return
        raise UserError(f"container {container_id!r} does not exist")
    container = root.load(container_id)
    now = status(container)
    if now != "stopped" and not force:  # runtime-spec: created too (runc deletes those)
        raise UserError(f"cannot delete container {container_id} that is not stopped: {now}")
    _kill(container)
    cgroups.from_record(dict(container.cgroup)).remove()
    _later_hooks(container, "poststop", document(container, "stopped"))
    root.remove(container_id)


def _later_hooks(container: Container, kind: str, state: dict[str, object]) -> None:
    """poststart / poststop: a failure is a warning (runtime-spec: the lifecycle goes on)."""
    if not container.hooks:
        return
    from unionfs.runtime import hooks

    given = jsonvalues.load(hooks.Hooks, json.loads(container.hooks))
    for hook in given.of(kind):  # a failure does not stop the others
        try:
            hooks.run(hook, json.dumps(state))
        except hooks.HookFailed as exc:
            warn(f"{kind} {exc.message}")
