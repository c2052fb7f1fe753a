"""Performing a plan's steps, in order, in this (single-threaded, freshly exec'd) process.

The one executor for ``run`` and ``exec``. Each step is a few syscalls; no step decides
what to do (``plan`` did). Before ``PivotRoot`` a path inside the new root is resolved by
``resolve_in_root`` so that a symlink in the image cannot make us create or mount anything
outside it. A failing step reports ``error CODE MESSAGE`` on the channel and ends the
process; nothing here may return to the caller's code after a ``Fork`` in the parent.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import posixpath
import resource
import signal
import socket
import stat
import struct
import typing

from unionfs.runtime import hooks
from unionfs.runtime import namespaces as ns
from unionfs.runtime import steps as p
from unionfs.runtime.helper import SETUP_FAILED, Channel
from unionfs.runtime.mountflags import (
    MS_BIND,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SYNCHRONOUS,
)

MAX_SYMLINKS = 40
# statvfs f_flag bit -> the mount flag that keeps it on a bind remount
_KEPT = ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
         (os.ST_NOEXEC, MS_NOEXEC), (os.ST_SYNCHRONOUS, MS_SYNCHRONOUS),
         (os.ST_MANDLOCK, MS_MANDLOCK), (os.ST_NOATIME, MS_NOATIME),
         (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))  # fmt: skip
TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCGPTPEER = 0x5441
TIOCSCTTY = 0x540E
# What a Rendezvous brought: the container's OCI state (JSON), for the hooks run here.
_received: dict[str, str] = {}


def resolve_in_root(root: str, path: str) -> str:
    """*path* (absolute, in the container) as a host path below *root*, with symlinks
    resolved as if *root* were ``/`` (``..`` stops at it). Components that do not exist
    are kept as they are."""
    todo = [part for part in path.split("/") if part not in ("", ".")]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            done.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many symlinks", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo[:0] = [part for part in target.split("/") if part not in ("", ".")]
            continue
        done.append(part)
    return os.path.join(root, *done)


def _make(root: str, target: str, kind: str, source: str = "") -> str:
    """The host path of *target* in *root*, created as a directory or an empty file."""
    path = resolve_in_root(root, target)
    if kind == "auto":
        kind = "dir" if os.path.isdir(source) else "file"
    if kind == "dir":
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    return path


def _exec(step: p.Exec, channel: Channel) -> typing.NoReturn:
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):  # Python changed these
        signal.signal(sig, signal.SIG_DFL)
    env = {key: value for key, _, value in (item.partition("=") for item in step.env)}
    name = step.args[0]
    try:
        os.execvpe(name, list(step.args), env)
    except OSError as exc:
        if exc.errno == errno.ENOENT and "/" not in name:
            fail(channel, 127, f'exec: "{name}": executable file not found in $PATH')
        if exc.errno == errno.ENOENT:
            fail(channel, 127, f'exec: "{name}": stat {name}: no such file or directory')
        fail(channel, 126, f'exec: "{name}": {exc.strerror.lower() if exc.strerror else exc}')


def _remount_adding(path: str, flags: int) -> None:
    """Add *flags* to the bind mount at *path*, keeping those it has (a bind remount sets
    all of them: ``ro`` alone would clear ``nodev``, and a locked one refuses to go)."""
    have = os.statvfs(path).f_flag
    kept = 0
    for st_bit, ms_bit in _KEPT:
        if have & st_bit:
            kept |= ms_bit
    ns.mount(None, path, None, MS_BIND | MS_REMOUNT | kept | flags, "")


def _terminal(step: p.Terminal, channel: Channel) -> None:
    """A pty of the container's devpts (through its /dev/ptmx) as fds 0-2 and controlling
    terminal; the master goes to the runtime, which relays it."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        # the peer through the master (not a path a container could swap)
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        os.fchown(slave, step.uid, -1)
        if step.console and os.path.isdir("/dev"):
            console = _make("/", "/dev/console", "file")
            ns.mount(f"/dev/pts/{number}", console, None, MS_BIND, "")
        channel.send_fd("pty", master)
    finally:
        os.close(master)
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _rendezvous(tag: str, channel: Channel) -> None:
    channel.send(f"ready {tag}")
    answer = channel.recv().decode()
    word, _, rest = answer.partition(" ")
    got_tag, _, state = rest.partition(" ")
    if word != "go" or got_tag != tag:
        os._exit(SETUP_FAILED)  # the runtime gave up; it says why
    if state:
        _received["state"] = state


def _run_hooks(step: p.RunHooks, channel: Channel) -> None:
    state = json.loads(_received.get("state") or "{}")
    state.update(status=step.status, pid=os.getpid())
    try:
        hooks.run_all(step.hooks, json.dumps(state))
    except hooks.HookFailed as exc:
        fail(channel, SETUP_FAILED, f"{step.kind} {exc.message}")


def _check_executable(step: p.CheckExecutable, channel: Channel) -> None:
    """As execvpe would look *name* up (runc's LookPath before the exec fifo)."""
    name = step.name
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in step.env if e.startswith("PATH=")), os.defpath)
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    denied = None
    for candidate in candidates:
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return
            denied = candidate
    if denied is not None:
        fail(channel, 126, f'exec: "{name}": permission denied')
    if "/" not in name:
        fail(channel, 127, f'exec: "{name}": executable file not found in $PATH')
    fail(channel, 127, f'exec: "{name}": stat {name}: no such file or directory')


def _await_start(fd: int, channel: Channel) -> None:
    """``ready start``, then block until ``start`` connects; talk to it from now on."""
    channel.send("ready start")
    listener = socket.socket(fileno=fd)
    try:
        conn, _addr = listener.accept()  # close-on-exec
    finally:
        listener.close()
    channel.sock.close()
    channel.sock = conn
    channel.send("started")


def fail(channel: Channel, code: int, message: str) -> typing.NoReturn:
    try:
        channel.send(f"error {code} {message}")
    finally:
        os._exit(code)


def perform(step: p.Step, channel: Channel) -> None:
    match step:
        case p.Unshare(flags=flags):
            ns.unshare(flags)
        case p.SetNs(path=path, kind=kind):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ns.setns(fd, ns.KINDS[kind][0])
            finally:
                os.close(fd)
        case p.Fork():
            pid = os.fork()
            if pid > 0:
                channel.send(f"pid {pid}")
                os._exit(0)
        case p.NewSession():
            os.setsid()
        case p.Terminal():
            _terminal(step, channel)
        case p.AwaitGo(tag=tag):
            if channel.recv().decode() != f"go {tag}":
                os._exit(SETUP_FAILED)  # the runtime gave up; it says why
        case p.MakeRprivate():
            ns.mount(None, "/", None, MS_REC | MS_PRIVATE, "")
        case p.Mount():
            target = _make(step.root, step.target, step.kind, step.source)
            fstype = step.fstype or None
            ns.mount(step.source, target, fstype, step.flags, step.data)
        case p.Remount(root=root, target=target, flags=flags):
            ns.mount(None, resolve_in_root(root, target), None, flags, "")
        case p.Propagation(root=root, target=target, flags=flags):
            ns.mount(None, resolve_in_root(root, target), None, flags, "")
        case p.MakeDir(root=root, target=target):
            _make(root, target, "dir")
        case p.Symlink(root=root, target=target, link=link):
            path = resolve_in_root(root, posixpath.dirname(link))
            os.symlink(target, os.path.join(path, posixpath.basename(link)))
        case p.PivotRoot(root=root):
            os.chdir(root)
            ns.pivot_root(".", ".")
            ns.umount2(".", ns.MNT_DETACH)
            os.chdir("/")
        case p.MaskPath(path=path):
            _mask(path)
        case p.ReadonlyPath(path=path):
            if os.path.lexists(path):
                ns.mount(path, path, None, MS_BIND | MS_REC, "")
                _remount_adding(path, MS_RDONLY | MS_REC)
        case p.ReadonlyRoot():
            _remount_adding("/", MS_RDONLY)
        case p.SetHostname(name=name):
            ns.sethostname(name)
        case p.SetDomainname(name=name):
            ns.setdomainname(name)
        case p.LoopbackUp():
            ns.loopback_up()
        case p.Sysctl(key=key, value=value):
            # bytes: after PivotRoot no codec module can be imported any more
            with open("/proc/sys/" + key.replace(".", "/"), "wb") as f:
                f.write(value.encode())
        case p.SetRlimit(resource=name, soft=soft, hard=hard):
            resource.setrlimit(getattr(resource, name), (soft, hard))
        case p.OomScoreAdj(value=value):
            with open("/proc/self/oom_score_adj", "wb") as f:
                f.write(str(value).encode())
        case p.Umask(mask=mask):
            os.umask(mask)
        case p.Chdir(path=path):
            os.chdir(path)
        case p.DropBounding(keep=keep):
            _drop_bounding(set(keep))
        case p.SetUser(uid=uid, gid=gid, groups=groups, keep_caps=keep_caps):
            if keep_caps:
                ns.prctl(ns.PR_SET_KEEPCAPS, 1)
            if groups or not _setgroups_denied():
                os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
        case p.SetCapabilities():
            ns.capset(_mask_of(step.effective), _mask_of(step.permitted),
                      _mask_of(step.inheritable))  # fmt: skip
            for cap in step.ambient:
                ns.prctl(ns.PR_CAP_AMBIENT, ns.PR_CAP_AMBIENT_RAISE, cap)
        case p.NoNewPrivileges():
            ns.prctl(ns.PR_SET_NO_NEW_PRIVS, 1)
        case p.Seccomp(program=program, flags=flags):
            ns.seccomp_filter(bytes.fromhex(program), flags)
        case p.Rendezvous(tag=tag):
            _rendezvous(tag, channel)
        case p.RunHooks():
            _run_hooks(step, channel)
        case p.CheckExecutable():
            _check_executable(step, channel)
        case p.AwaitStart(fd=fd):
            _await_start(fd, channel)
        case p.Exec():
            _exec(step, channel)
        case _:
            raise AssertionError(f"unknown step {step!r}")


def _setgroups_denied() -> bool:
    """In a user namespace with only the user's own ids mapped, setgroups(2) is denied (and
    the process has no supplementary groups there to drop). Read as bytes: after
    PivotRoot no codec module can be imported any more."""
    try:
        with open("/proc/self/setgroups", "rb") as f:
            return f.read().strip() == b"deny"
    except FileNotFoundError:
        return False


def _mask(path: str) -> None:
    """Hide *path*: /dev/null over a file, an empty read-only tmpfs over a directory."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path):
        ns.mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0")
    else:
        ns.mount("/dev/null", path, None, MS_BIND, "")


def _drop_bounding(keep: set[int]) -> None:
    cap = 0
    while True:
        if cap not in keep:
            try:
                ns.prctl(ns.PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # past the kernel's last capability
                    return
                raise
        cap += 1


def _mask_of(caps: tuple[int, ...]) -> int:
    result = 0
    for cap in caps:
        result |= 1 << cap
    return result


def execute(steps: tuple[p.Step, ...], channel: Channel) -> typing.NoReturn:
    """Perform *steps*; the last one execs. Any failure is reported and ends the process."""
    for step in steps:
        try:
            perform(step, channel)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename and str(exc.filename) not in str(
                exc.strerror) else ""  # fmt: skip
            fail(channel, SETUP_FAILED, f"{type(step).__name__}: {exc.strerror}{where}")
        except Exception as exc:
            fail(channel, SETUP_FAILED, f"{type(step).__name__}: {exc!r}")
    fail(channel, SETUP_FAILED, "the plan ended without an Exec step")
