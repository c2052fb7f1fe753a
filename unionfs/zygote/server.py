"""The zygote: a resident, pre-imported process that forks a worker per mount.

Python's start and the imports of the mount path (trio, pyfuse3, the index, our FUSE
handlers) cost ~150 ms of CPU before a mount can serve; a fork of a process that already
imported them serves in ~15 ms. ``client`` (the console script's first step, unless
UNIONFS_ZYGOTE=0) is tried first by a mount (``unionfs mount``, the mount-program forms):
it hands the zygote its arguments, environment, umask, limits, working directory and
stdin/stdout/stderr, and relays the worker's exit status. The zygote serves a caller only
when the worker would be the caller's twin: the same user, groups, namespaces, cgroup,
root, capabilities and unionfs code; anything else (or no zygote) is a fallback to the
ordinary start, and a missing zygote is started for the next mount. A worker shows ``ps``
the caller's command line, environment and name (``guise``); a zygote that cannot do that
serves no mount. It listens on an
abstract socket (nothing on disk; per network namespace), exits after UNIONFS_ZYGOTE_IDLE
seconds (default 20) without a request, and when its code changed on disk.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import resource
import signal
import socket
import struct
import sys
import typing

from unionfs.zygote import client, guise

IDLE_DEFAULT = 20.0
MAX_REQUEST = 1 << 20
_STATUS_FIELDS = (b"CapInh", b"CapPrm", b"CapEff", b"CapBnd", b"CapAmb", b"NoNewPrivs",
                  b"Seccomp")  # fmt: skip

# -- the zygote ----------------------------------------------------------------------------


def _code_stamp(root: str) -> tuple[int, int]:
    """The newest modification time and the count of the package's files: a changed
    checkout must not be served by code imported before the change."""
    newest = count = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(entry.path)
                elif entry.name.endswith(".py"):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
                    count += 1
    return newest, count


def _read_early(name: str) -> bool:
    """Variables read at start-up or import, which a worker would not see: the
    interpreter's own and the request profile's (``fuse.edge``)."""
    return name.startswith("PYTHON") or name == "UNIONFS_PROFILE"


def _identity(pid: int | str) -> tuple[object, ...]:
    """What a worker inherits from the zygote rather than from its caller."""
    ns = tuple((st.st_dev, st.st_ino) for st in
               (os.stat(f"/proc/{pid}/ns/{n}") for n in client.NAMESPACES))  # fmt: skip
    root = os.stat(f"/proc/{pid}/root")
    with open(f"/proc/{pid}/cgroup", "rb") as f:
        cgroup = f.read()
    with open(f"/proc/{pid}/status", "rb") as f:
        status = [ln for ln in f.read().splitlines() if ln.split(b":")[0] in _STATUS_FIELDS]
    return ns, (root.st_dev, root.st_ino), cgroup, status


def _refusal(request: dict[str, typing.Any], peer: tuple[int, int, int]) -> str | None:
    """Why the worker would not be the caller's twin, or None."""
    pid, uid, gid = peer
    if (uid, gid) != (os.getuid(), os.getgid()) or os.geteuid() != uid:
        return "another user"
    if request.get("code") != client.package() or request.get("python") != sys.executable:
        return "another unionfs"
    if sorted(request.get("groups", ())) != sorted(os.getgroups()):
        return "other groups"
    env = request.get("env", {})
    if any(env.get(k) != os.environ.get(k) for k in {*env, *os.environ} if _read_early(k)):
        return "another interpreter or profile setting"
    try:
        if _identity(pid) != _identity("self"):
            return "another namespace, cgroup, root or capability set"
    except OSError:
        return "the caller is gone"
    return None


def serve() -> int:
    """The zygote's loop: import the mount path, then fork a worker per accepted request."""
    cmdline, environ, _comm = guise.own()
    try:  # the zygote's own line, under a name that says what it is; proof that wear works
        guise.wear(cmdline, environ, b"unionfs-zygote")
        dressable = True
    except OSError:
        dressable = False  # every caller mounts itself: no mount may show the zygote's line
    if dressable:
        from unionfs.cli import mount

        mount.preload()  # the point of the zygote: the mount path imported once, before any fork

    idle = float(os.environ.get(client.IDLE_ENV) or IDLE_DEFAULT)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        listener.bind(client.address())
    except OSError:
        return 0  # another zygote got there first
    listener.listen(64)
    listener.settimeout(idle)
    root = client.package()
    stamp = _code_stamp(root)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            break
        with conn:
            conn.setblocking(True)
            if _code_stamp(root) != stamp:
                # The checkout changed: this mount starts itself, the next a fresh zygote.
                with contextlib.suppress(OSError):
                    conn.send(b"fallback")
                break
            if not dressable:
                with contextlib.suppress(OSError):
                    conn.send(b"fallback")
                continue
            if not _handle(conn, listener):
                break
    listener.close()
    return 0


def _handle(conn: socket.socket, listener: socket.socket) -> bool:
    """Fork a worker for the request on *conn*; False when the zygote should go."""
    fds: list[int] = []
    try:
        data, fds, flags, _addr = socket.recv_fds(conn, MAX_REQUEST, 8)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        peer = struct.unpack("3i", creds)
        if peer[1] != os.getuid() or len(fds) != 4:
            reason: str | None = "another user"  # its request is not even read
        elif flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            reason = "a request too large"  # a huge environment: cut short, unreadable
        else:
            request = marshal.loads(data)  # a request of our own user
            reason = _refusal(request, peer)
        if reason is not None:
            conn.send(b"fallback")
            return reason != "another unionfs"
        pid = os.fork()
        if pid == 0:
            listener.close()
            _worker(conn, request, fds)  # never returns
        conn.send(f"started:{pid}".encode())
        return True
    except (OSError, ValueError, EOFError, TypeError):  # EOFError: marshal data cut short
        with contextlib.suppress(OSError):
            conn.send(b"fallback")
        return True
    finally:
        for fd in fds:
            os.close(fd)


def _worker(conn: socket.socket, request: dict[str, typing.Any], fds: list[int]) -> None:
    """Become the caller (its limits, environment, umask, cwd, stdio), then mount."""
    code = 70
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # a mount waits for its own children
    try:
        try:
            for res, soft, hard in request["limits"]:
                resource.setrlimit(res, (soft, hard))
        except (OSError, ValueError):
            conn.send(b"fallback")  # a limit above ours: the caller mounts itself
            os._exit(0)
        try:
            shown = request["shown"]
            guise.wear(shown["cmdline"], shown["environ"], shown["comm"])
        except (OSError, ValueError, KeyError, TypeError):
            conn.send(b"fallback")  # it would show the zygote's line: the caller mounts itself
            os._exit(0)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        os.fchdir(fds[3])
        for fd in fds:
            os.close(fd)
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        from unionfs.cli import main

        code = main(sys.argv[1:])
    except SystemExit as exc:  # argparse's --help, as the interpreter would end
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:  # a worker reports its end; it never unwinds into the loop
        code = 70
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.send(f"exit:{code}".encode())
        os._exit(code)


if __name__ == "__main__":
    sys.exit(serve())
