"""``unionfs run`` and ``unionfs start``: a container from a ``RunSpec``, from start to
clean-up.

``run`` registers a new container (state directory, empty upper; the spec saved as
``spec.json``); ``start`` claims an existing one that is created or exited, not mounted,
and runs its saved spec over its existing upper. Then the same steps: cgroups (limits set,
nothing in them yet), the unionfs mount, the helper (which unshares and forks the
container's process), the process into the cgroups, go; then wait, forwarding signals.
Every resource is pushed on one clean-up stack as soon as it exists, so whatever happens
(a bad step, the process killed, SIGTERM to the runtime) the process is killed and reaped,
the root unmounted, the cgroups removed and, for ``--rm`` or a failed ``run``, the state
directory deleted (a failed ``start`` leaves the container as it was). Never call this
from a process with threads, nor from one that others wait on for children (it becomes a
subreaper).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import sys
import time
from collections.abc import Callable

from unionfs.errors import UserError
from unionfs.runtime import cgroups, ctrlog, devices, placement, plan, reclaim, rootfs, userns
from unionfs.runtime import namespaces as ns
from unionfs.runtime import network as net
from unionfs.runtime.detach import Detached
from unionfs.runtime.helper import Helper, StepError
from unionfs.runtime.hooks import Hooks
from unionfs.runtime.proxy import Child, Interrupted, SignalProxy, process_start
from unionfs.runtime.spec import MountSpec, Resources, RunSpec
from unionfs.runtime.state import ContainerDirs, Saved, State, describe
from unionfs.runtime.stdio import Streams

# Not the host's: a container's own, or handled by other mounts
_NOT_HOST_DEVICES = frozenset({"pts", "shm", "mqueue", "fd", "ptmx", "console", "tty",
                               "stdin", "stdout", "stderr"})  # fmt: skip


def check_host_paths(spec: RunSpec) -> str:
    """The rootfs, resolved; every bind source must exist."""
    if not os.path.isdir(spec.rootfs):
        what = "does not exist" if not os.path.lexists(spec.rootfs) else "is not a directory"
        raise UserError(f"rootfs {spec.rootfs!r} {what}")
    for mount in spec.mounts:
        if mount.type == "bind" and not os.path.exists(mount.source):
            raise UserError(f"bind source {mount.source!r} (for {mount.destination}) "
                            "does not exist")  # fmt: skip
    return os.path.realpath(spec.rootfs)


def with_standard_devices(resources: Resources) -> Resources:
    """Any device rules read over "deny all" (cgroup v1 would start from the parent's list,
    often "a *:* rwm"; runc's rules start from deny too), and the standard /dev and the
    ptys allowed on top of them, as runc appends its default devices."""
    if resources.devices is None:
        return resources
    rules = resources.devices
    base = () if rules and rules[0].kind == "a" else (devices.DeviceRule(False, "a"),)
    return dataclasses.replace(resources, devices=base + rules + devices.STANDARD)


def host_devices(dev: str = "/dev") -> tuple[str, ...]:
    """The host's device nodes (in /dev and one level below), for --privileged."""
    found = []
    for top in sorted(os.listdir(dev)):
        if top in _NOT_HOST_DEVICES:
            continue
        path = os.path.join(dev, top)
        names = [path]
        if os.path.isdir(path) and not os.path.islink(path):
            names = [os.path.join(path, n) for n in sorted(os.listdir(path))]
        for name in names:
            st = os.lstat(name)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append(name)
    return tuple(found)


def cgroup_dirs(cgroup: cgroups.Cgroup) -> tuple[tuple[str, str], ...]:
    """(name under /sys/fs/cgroup, host directory) of the container's cgroups."""
    if isinstance(cgroup, cgroups.V2Cgroup):
        return (("", cgroup.path),)
    if isinstance(cgroup, cgroups.V1Cgroup):
        paths = dict.fromkeys(cgroup.dirs.values())
        return tuple((os.path.relpath(p, cgroups.ROOT).split("/")[0], p) for p in paths)
    return ()


def _own_gid_only(mount: MountSpec) -> MountSpec:
    if mount.type != "devpts":
        return mount
    options = tuple(o for o in mount.options if not o.startswith("gid=") or o == "gid=0")
    return dataclasses.replace(mount, options=options)


def _host_sysfs(mount: MountSpec) -> MountSpec:
    if mount.type != "sysfs":
        return mount
    return MountSpec(mount.destination, "bind", "/sys", ("rbind", "nosuid", "noexec", "nodev",
                                                         "ro"))  # fmt: skip


def _cgroup(name: str, resources: Resources, place: cgroups.Cgroup | None) -> cgroups.Cgroup:
    """Below our own cgroup, as root; rootless, where ``placement.delegated`` found room."""
    if place is None:
        return placement.locate(name, resources)
    if isinstance(place, cgroups.V1Cgroup):
        return cgroups.V1Cgroup({c: os.path.join(os.path.dirname(p), name)
                                 for c, p in place.dirs.items()})  # fmt: skip
    if isinstance(place, cgroups.V2Cgroup):
        return cgroups.V2Cgroup(os.path.join(os.path.dirname(place.path), name))
    return place


class Registration:
    """The registration, and what to do with it at the end. *before* is the state of a
    container being started again (None for a new one)."""

    def __init__(self, dirs: ContainerDirs, state: State, remove: bool,
                 before: State | None = None) -> None:  # fmt: skip
        self.dirs = dirs
        self.state = state
        self.remove = remove
        self.before = before

    def update(self, **changes: object) -> None:
        self.state = dataclasses.replace(self.state, **changes)  # type: ignore[arg-type]
        self.dirs.save(self.state)

    def finish(self) -> None:
        """Delete the directory for --rm or a new container that never ran; a container
        that failed to start again is left as it was (its upper holds its changes)."""
        ran = self.state.status == "exited"
        if (ran and self.remove) or (not ran and self.before is None):
            self.dirs.delete(self.state.id)
        elif not ran and self.before is not None:
            self.dirs.save(self.before)


def run(spec: RunSpec, home: str, stop_timeout: float = 10.0, image: str | None = None,
        lowers: tuple[str, ...] = (), runtime: str = "unionfs",
        detached: Detached | None = None) -> int:  # fmt: skip
    """Run *spec*; over *lowers* (an image's layer dirs, topmost first) when given, else
    over ``spec.rootfs`` alone. As an ordinary user, in a user namespace of its own. The
    spec is saved with the container, for ``start``."""
    if spec.hooks != Hooks():
        raise UserError("config.json: hooks are run by the OCI runtime (unionfs-runtime "
                        "create, then start), not by unionfs run")  # fmt: skip
    # Absolute, for a start from elsewhere (a relative --bundle gives a relative rootfs).
    saved = Saved(dataclasses.replace(spec, rootfs=os.path.abspath(spec.rootfs)), stop_timeout,
                  runtime)  # fmt: skip
    place = None
    if os.geteuid() != 0:
        spec, place = _go_rootless(spec)
    lower = check_host_paths(spec)
    dirs = ContainerDirs(home)
    proxy = SignalProxy(stop_timeout)

    def body(cleanup: contextlib.ExitStack) -> int:
        state = dirs.create(spec.name, spec.process.args, lower, spec.remove, image=image,
                             lowers=lowers)  # fmt: skip
        container = Registration(dirs, state, spec.remove)
        cleanup.callback(container.finish)
        dirs.save_spec(state.id, saved)
        proxy.check()
        return _start_and_wait(spec, container, proxy, cleanup, place, runtime, detached)

    return supervised(proxy, body)


def start(home: str, ref: str, detached: Detached | None = None) -> int:
    """Run container *ref*'s saved spec again over its upper (``unionfs start``): it must
    be created or exited (or dead: what its killed runtime left is cleaned up first), and
    not mounted by ``unionfs mount``."""
    dirs = ContainerDirs(home)
    found = dirs.find(ref)
    saved = dirs.load_spec(found)
    if saved is None:
        raise UserError(f"container {found.name} has no command to start: it was created "
                        "without one and its image has none (unionfs mount "
                        f"{found.name} shows its files)")  # fmt: skip
    _startable(dirs, found)  # the same check again under the lock: a clear error early
    spec = saved.spec
    place = None
    if os.geteuid() != 0:
        spec, place = _go_rootless(spec)
    check_host_paths(spec)
    for lower in found.lowers:
        if not os.path.isdir(lower):
            raise UserError(f"container {found.name}: its layer {lower} is missing")
    proxy = SignalProxy(saved.stop_timeout)

    def body(cleanup: contextlib.ExitStack) -> int:
        before, state = dirs.claim(found.id, lambda s: _startable(dirs, s))
        container = Registration(dirs, state, spec.remove, before)
        cleanup.callback(container.finish)
        if describe(before).startswith("dead"):  # ours now: no other start or rm can race
            reclaim.clean_up(before, dirs.paths(state.id).rootfs)
            ran = before.status != "created"
            container.before = dataclasses.replace(
                before, status="exited" if ran else "created", pid=None, pid_start=None,
                exit_code=137 if ran else None, runtime_pid=None, runtime_start=None, cgroup=(),
            )  # fmt: skip
        proxy.check()
        return _start_and_wait(spec, container, proxy, cleanup, place, saved.runtime,
                               detached)  # fmt: skip

    return supervised(proxy, body)


def _startable(dirs: ContainerDirs, state: State) -> None:
    """Refuse (UserError) to start a container that is running, or mounted."""
    status = describe(state)
    if status in ("starting", "running", "stopping"):
        raise UserError(f"container {state.name} is already {status}")
    if status.startswith("dead"):
        return  # its runtime's mount is still there: cleaned up once claimed
    if os.path.ismount(dirs.paths(state.id).rootfs):
        raise UserError(f"container {state.name} is mounted: unionfs umount {state.name} "
                        "first")  # fmt: skip


def _go_rootless(spec: RunSpec) -> tuple[RunSpec, cgroups.Cgroup]:
    """Check everything a rootless run needs, pick the cgroup, then enter a user namespace
    where this user is root (the rest of the run is then as for root)."""
    mapping, note = userns.preflight()
    net.check_tun(spec.network)
    process = spec.process
    if userns.needs_more_ids(mapping, process.uid, process.gid, process.groups):
        raise UserError(f"the container's user {process.uid}:{process.gid} needs subordinate "
                        f"ids, and {note}")  # fmt: skip
    # Device rules need the v1 devices controller (never delegated) or a BPF program (root
    # only): dropped, as rootless runc does. Device nodes stay inert all the same: what a
    # user namespace mounts is nodev, and mknod needs CAP_MKNOD of the host.
    spec = dataclasses.replace(spec, resources=dataclasses.replace(spec.resources, devices=None))
    if "network" not in spec.namespaces:
        # sysfs can be mounted only by the owner of the network namespace (the host's one
        # here): the host's /sys bound read-only instead, as rootless runc and podman do
        spec = dataclasses.replace(spec, mounts=tuple(_host_sysfs(m) for m in spec.mounts))
    if mapping.single:
        # Only id 0 exists inside: devpts's gid=5 (tty) would be refused, as rootless
        # runc finds too; the ptys then belong to group 0.
        spec = dataclasses.replace(spec, mounts=tuple(_own_gid_only(m) for m in spec.mounts))
    cgroup, cgroup_note = placement.delegated("unionfs-pending", spec.resources)
    for text in (note, cgroup_note):
        if text is not None:
            userns.notice(text)
    userns.enter(mapping)
    return spec, cgroup


def supervised(proxy: SignalProxy, body: Callable[[contextlib.ExitStack], int]) -> int:
    """Run *body* with signals forwarded by *proxy*; whatever happens, everything it put on
    the cleanup stack is undone. An interruption or a failed step becomes an exit code."""
    proxy.install()
    cleanup = contextlib.ExitStack()
    try:
        return body(cleanup)
    except Interrupted as exc:
        print(f"unionfs: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except StepError as exc:
        print(f"unionfs: {exc.message}", file=sys.stderr)
        return exc.code
    finally:
        proxy.quiet = True
        try:
            cleanup.close()
        finally:
            proxy.restore()


def attach_pty(helper: Helper, streams: Streams, proxy: SignalProxy) -> None:
    """Relay the pty the container made (if it made one), window size changes too."""
    master = helper.take_pty()
    if master is not None:
        streams.set_pty(master)
        proxy.on_winch = streams.resize


def _mount(spec: RunSpec, container: Registration, cleanup: contextlib.ExitStack) -> str:
    """The union at the container's rootfs (unmounted by *cleanup*)."""
    state = container.state
    paths = container.dirs.paths(state.id)
    indexdir = os.path.join(container.dirs.home, "index")
    cleanup.callback(rootfs.unmount, paths.rootfs)
    lowers = list(state.lowers or (state.rootfs,))
    # nodev: a device node in an image (or made in the upper) is inert; /dev has its own
    extra = () if spec.privileged else ("nodev",)
    if state.lowers:  # the store's layers, never written once stored: no walk to check them
        extra = (*extra, "sealed")
    rootfs.mount(lowers, paths.upper, paths.work, paths.rootfs, indexdir, extra)
    return paths.rootfs


def _start_and_wait(spec: RunSpec, container: Registration, proxy: SignalProxy,
                    cleanup: contextlib.ExitStack, place: cgroups.Cgroup | None,
                    runtime: str = "unionfs", detached: Detached | None = None) -> int:  # fmt: skip
    state = container.state
    spec = spec.with_id(state.short_id)
    paths = container.dirs.paths(state.id)
    if runtime != "unionfs" and (detached is not None or spec.network == "private"):
        raise UserError(f"--runtime {runtime}: -d, -p and --network private need unionfs's "
                        "own runtime")  # fmt: skip
    cgroup = _cgroup(f"unionfs-{state.id}", spec.resources, place)
    if runtime != "unionfs":  # it makes the cgroups there (a path relative to its own)
        from unionfs.runtime import delegate

        container.update(cgroup=tuple(cgroup.record().items()))
        proxy.check()
        _mount(spec, container, cleanup)
        proxy.check()
        devices = host_devices() if spec.privileged else ()
        return delegate.start_and_wait(spec, container, proxy, cleanup, cgroup, runtime, devices)
    cgroup.create()
    cleanup.callback(cgroup.remove)
    container.update(cgroup=tuple(cgroup.record().items()))  # for `rm` if we are killed
    cgroup.set_limits(with_standard_devices(spec.resources))
    proxy.check()
    sink = None
    if detached is not None:
        sink = ctrlog.Sink(paths.log, detached.log_limit)
        cleanup.callback(sink.close)
    streams = Streams(spec.process.interactive, spec.process.terminal, sink)
    cleanup.callback(streams.close)
    # starts while the filesystem is mounted; waits for its plan
    helper = Helper(streams.child_fds())
    cleanup.callback(helper.close)
    streams.started()
    root = _mount(spec, container, cleanup)
    proxy.check()
    # After the mount (its daemon must not become our child): the container's process,
    # orphaned when the helper exits, becomes our child.
    ns.prctl(ns.PR_SET_CHILD_SUBREAPER, 1)
    steps = plan.run_plan(spec, root, cgroup_dirs(cgroup),
                          host_devices() if spec.privileged else ())  # fmt: skip
    helper.send_plan(steps)
    pid = helper.child_pid()
    child = Child(pid)
    cleanup.callback(child.kill_and_reap)
    cgroup.add(pid)
    if spec.network == "private":  # its namespace exists; nothing in it runs yet
        pasta = net.Pasta(pid, paths.dir, spec.ports)
        cleanup.callback(pasta.close)
    proxy.attach(pid)
    container.update(status="running", pid=pid, pid_start=process_start(pid),
                     namespaces=spec.namespaces, process=spec.process,
                     started=time.time())  # fmt: skip
    helper.go("cgroup")
    failure = None
    try:
        helper.finish()
    except StepError as exc:
        failure = exc
    attach_pty(helper, streams, proxy)
    if detached is not None and failure is None:
        detached.ready(container.state, paths.log)
    code = proxy.wait(pid, streams.relay)
    streams.restore()
    child.reaped = True
    oom = (cgroup.stats().oom_kills or 0) > 0
    container.update(status="exited", exit_code=code, oom_killed=oom, finished=time.time())
    if failure is not None:
        print(f"unionfs: {failure.message}", file=sys.stderr)
    return code
