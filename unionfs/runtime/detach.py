"""Detached containers (``run -d``, ``start``): the runtime as a monitor of its own, as
conmon is to podman, and waiting for containers to end.

``launch`` forks a monitor in a session of its own (it survives the caller's shell), which
runs the runtime with the container's output going to its log (``ctrlog``); the caller gets
the container's id once its process runs, or EOF after the monitor said why it failed on
the caller's stderr. The monitor then waits for the process, records its exit and cleans
up, as an attached runtime does. ``wait_for_runtime`` / ``wait_for_exit`` wait on pidfds.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.runtime import ctrlog
from unionfs.runtime.proxy import process_start
from unionfs.runtime.state import ContainerDirs, State


@dataclass(slots=True)
class Detached:
    """What a detached runtime does differently: its output to *log_limit*-bounded files,
    and *ready* called once the container's process runs."""

    ready: Callable[[State, str], None]
    log_limit: int = ctrlog.DEFAULT_MAX


def launch(body: Callable[[Detached], int], log_limit: int = ctrlog.DEFAULT_MAX) -> str:
    """Run *body* (the runtime, given its ``Detached``) in a monitor process; the id of its
    container once it runs. UserError (exit 125, as podman) if it never ran: the monitor
    has told why on stderr."""
    r, w = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    first = os.fork()
    if first == 0:  # pragma: no cover - a forked child, measured by its behaviour
        os.close(r)
        code = 70
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.close(null)
            code = body(Detached(lambda state, log: _ready(w, state, log), log_limit))
        except UserError as exc:
            print(f"unionfs: {exc.message.removeprefix('unionfs: ')}", file=sys.stderr)
            code = exc.exit_code
        except BaseException as exc:
            print(f"unionfs: internal error in the container's monitor: {exc!r}",
                  file=sys.stderr)  # fmt: skip
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os._exit(code)
    os.close(w)
    os.waitpid(first, 0)
    chunks = []
    while chunk := os.read(r, 4096):
        chunks.append(chunk)
    os.close(r)
    said = b"".join(chunks).decode()
    if not said:
        raise UserError("the container did not start (see above)", exit_code=125)
    return said


def _ready(w: int, state: State, log: str) -> None:
    """The container runs: tell the caller its id, and say anything more into *log*'s
    neighbour (``monitor.log``), not on the caller's stderr, which is let go."""
    sys.stderr.flush()
    fd = os.open(os.path.join(os.path.dirname(log), "monitor.log"),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)  # fmt: skip
    os.dup2(fd, 2)
    os.close(fd)
    os.write(w, state.id.encode())
    os.close(w)


def _pidfd(pid: int | None, start: int | None) -> int | None:
    """A pidfd of *pid* if it is still the process that started at *start*."""
    if pid is None:
        return None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if process_start(pid) != start:
        os.close(fd)
        return None
    return fd


def _wait_fd(fd: int | None, timeout: float | None) -> bool:
    """True once the process of *fd* has exited (closing it), False at *timeout*."""
    if fd is None:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def wait_for_exit(state: State, timeout: float | None) -> bool:
    """Until the container's process has exited (True), or *timeout* seconds (False)."""
    return _wait_fd(_pidfd(state.pid, state.pid_start), timeout)


def wait_for_runtime(state: State, timeout: float | None = None) -> bool:
    """Until the runtime (monitor) of *state* has finished its clean-up and exited."""
    return _wait_fd(_pidfd(state.runtime_pid, state.runtime_start), timeout)


def final_state(dirs: ContainerDirs, state: State) -> State | None:
    """*state* as its runtime left it (None: removed, ``--rm``)."""
    wait_for_runtime(state)
    return dirs.load(state.id)
