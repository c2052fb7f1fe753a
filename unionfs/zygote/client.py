"""The ``unionfs`` program's first step: hand a mount to the zygote (unless UNIONFS_ZYGOTE=0).

The zygote (``server``) is a resident process that imported the mount path once and
forks a worker per mount; this is its client, and imports nothing of unionfs but this
file, so that a mount handed over costs a bare interpreter's start. Whatever the zygote
cannot serve (no zygote yet: one is started for the next mount; another user, namespace,
cgroup or checkout) the CLI runs here as always. It must not do anything else.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import resource
import signal
import socket
import sys
import zlib

ENV = "UNIONFS_ZYGOTE"
ANSWER_TIMEOUT = 30.0  # a zygote that has not forked a worker by then is stuck: mount here
IDLE_ENV = "UNIONFS_ZYGOTE_IDLE"
LIMITS = [getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")]


NAMESPACES = ("mnt", "user", "pid", "net", "ipc", "uts", "cgroup")


def package() -> str:
    """The unionfs checkout this code is (a zygote serves only its own)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def address() -> bytes:
    """The abstract socket name: one zygote per user, interpreter, unionfs checkout and
    what a worker inherits from its zygote (namespaces, cgroup, limits, groups), so that
    callers that one zygote must refuse (podman lowers its limits) find one of their own.
    A collision of the hash is refused by the zygote's own check: the caller mounts."""
    parts = [sys.executable, package(), *(str(os.stat(f"/proc/self/ns/{n}").st_ino)
                                          for n in NAMESPACES)]  # fmt: skip
    with open("/proc/self/cgroup") as f:
        parts.append(f.read())
    parts += [repr(resource.getrlimit(r)) for r in LIMITS]
    parts.append(repr(sorted(os.getgroups())))
    key = "\0".join(parts).encode(errors="surrogateescape")
    return b"\0unionfs-zygote-%d-%08x" % (os.getuid(), zlib.crc32(key))


def is_mount_call(argv: list[str]) -> bool:
    """``mount ...`` and the mount-program forms that open with an option or a path
    (podman's ``-o OPTS MNT``, mount(8)'s ``/src MNT -o OPTS``); any other (``--root``,
    mount(8)'s ``unionfs MNT -o OPTS``) starts the ordinary way."""
    if not argv:
        return False
    if argv[0] == "mount":
        return True
    return (argv[0].startswith("-") or "/" in argv[0]) and any(
        a.startswith("-o") and not a.startswith("--") for a in argv
    )


def main() -> int:
    """The console script: the zygote for a mount unless UNIONFS_ZYGOTE=0, else the CLI."""
    argv = sys.argv[1:]
    if wanted() and is_mount_call(argv):
        code = client(argv)
        if code is not None:
            return code
    from unionfs.cli import main as cli

    return cli(argv)


def wanted() -> bool:
    """The zygote is on unless UNIONFS_ZYGOTE says 0 (or no, off, false)."""
    return os.environ.get(ENV, "").strip().lower() not in ("0", "no", "off", "false")


def _shown() -> dict[str, bytes]:
    """What ``ps`` shows of this process: the worker shows the same (``server.guise``)."""
    out = {}
    for name in ("cmdline", "environ", "comm"):
        with open(f"/proc/self/{name}", "rb") as f:
            out[name] = f.read()
    out["comm"] = out["comm"].rstrip(b"\n")
    return out


def client(argv: list[str]) -> int | None:
    """Run the mount *argv* in a worker of the zygote: its exit status, or None when the
    caller must mount itself (no zygote: one is started for the next mount)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(ANSWER_TIMEOUT)
        try:
            sock.connect(address())
        except OSError:
            _spawn()
            return None
        if not _ours(sock):
            return None  # the name is held by another user's process: tell it nothing
        request = {
            "argv": [sys.argv[0], *argv], "env": dict(os.environ), "umask": _umask(),
            "limits": [(r, *resource.getrlimit(r)) for r in LIMITS],
            "groups": sorted(os.getgroups()), "code": package(), "python": sys.executable,
        }  # fmt: skip
        try:
            request["shown"] = _shown()
            cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                socket.send_fds(sock, [marshal.dumps(request)], [0, 1, 2, cwd])
            finally:
                os.close(cwd)
            reply = sock.recv(256)
        except OSError:
            return None  # a closed stdio descriptor, an unreadable cwd: mount here
        if not reply.startswith(b"started:"):
            return None  # the zygote said fallback (or went away): mount here
        worker = int(reply.split(b":")[1])
        sock.settimeout(None)  # the worker's mount, or its foreground service, takes its time
        forward = _forward_signals(worker)
        try:
            status = sock.recv(256)
        finally:
            for sig, old in forward.items():
                signal.signal(sig, old)
        if status == b"fallback":
            return None  # the worker could not become the caller's twin: nothing done yet
        if not status.startswith(b"exit:"):
            print("unionfs: internal error (the mount's worker died)", file=sys.stderr)
            return 70
        return int(status.split(b":")[1])
    finally:
        sock.close()


def _ours(sock: socket.socket) -> bool:
    """Whether the process listening at the other end runs as this user. An abstract name
    belongs to whoever binds it first: another user could wait there for our environment,
    stdio and working directory, and name a pid for us to signal."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)  # pid, uid, gid
    return int.from_bytes(creds[4:8], sys.byteorder) == os.getuid()


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _forward_signals(pid: int) -> dict[int, signal._HANDLER]:  # typing: not imported
    """What a user sends the mount command (^C, a TERM) goes to the worker doing the mount."""

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    return {sig: signal.signal(sig, forward)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}  # fmt: skip


def _spawn() -> None:
    """Start a zygote for the next mount: detached, its own session, no descriptor of ours
    (podman waits for its mount program's output pipes to close)."""
    import subprocess

    with contextlib.suppress(OSError):
        subprocess.Popen([sys.executable, "-m", "unionfs.zygote.server"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                         start_new_session=True, close_fds=True)  # fmt: skip
