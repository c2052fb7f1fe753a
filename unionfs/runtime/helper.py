"""The runtime's side of the helper process, and the channel both sides speak over.

The helper is ``python -m unionfs.runtime.child FD``: a fresh exec, so it has one thread.
Over one SOCK_SEQPACKET socket pair (a message per send, EOF when every holder closed) the
runtime sends the plan; the helper answers ``pid N`` after its ``Fork`` step; the runtime
answers ``go TAG`` once the child is in its cgroups; a failed step answers
``error CODE MESSAGE``; a Terminal step sends ``pty`` with the pty's master fd attached.
The child holds the socket close-on-exec, so EOF after ``go`` means the command was exec'd.
The helper must not be forked from a process with threads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import typing
from collections.abc import Callable

if typing.TYPE_CHECKING:
    from unionfs.runtime import plan

MAX_MESSAGE = 4 << 20
SETUP_FAILED = 125  # as docker run: the runtime, not the command, failed


class StepError(Exception):
    """A step failed in the helper or the child: *code* to exit with, *message* to show."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Channel:
    """One end of the socket pair. Not thread-safe; one message per call."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, text: str | bytes) -> None:
        self.sock.send(text.encode() if isinstance(text, str) else text)

    def recv(self) -> bytes:
        """The next message; b"" at EOF."""
        return self.sock.recv(MAX_MESSAGE)

    def send_fd(self, text: str, fd: int) -> None:
        socket.send_fds(self.sock, [text.encode()], [fd])

    def recv_fds(self) -> tuple[bytes, list[int]]:
        """The next message and the fds that came with it (close-on-exec)."""
        message, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 4)
        return message, fds

    def close(self) -> None:
        self.sock.close()


class Helper:
    """A started helper process, the runtime's view. Calls in order: ``send_plan``,
    ``child_pid``, ``go``, ``finish``; ``close`` always. It is started before its plan is
    known, so that Python's start-up overlaps other set-up work."""

    def __init__(self, stdio: tuple[int, int, int] | None = None,
                 pass_fds: tuple[int, ...] = (),
                 fork: Callable[[Channel], typing.NoReturn] | None = None) -> None:  # fmt: skip
        """*stdio*: the fds the helper (and so the container's process) gets as 0, 1, 2;
        *pass_fds*: more fds it inherits, under the same numbers (a step names them).
        *fork*: fork this process and run it (``child.serve``) in the child, instead of
        starting a fresh Python: saves its start-up, only for a caller that is
        single-threaded."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.channel = Channel(ours)
        self.pty: int | None = None  # the master of the pty a Terminal step made
        stdin, stdout, stderr = stdio if stdio is not None else (None, None, None)
        if fork is not None:
            self.proc: subprocess.Popen[bytes] | _Forked = _Forked(fork, ours, theirs, stdio)
            return
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "unionfs.runtime.child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(), *pass_fds),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
            )
        finally:
            theirs.close()

    def send_plan(self, steps: tuple[plan.Step, ...]) -> None:
        from unionfs.runtime.steps import dumps  # not imported for what needs no plan

        self.channel.send(dumps(steps))

    def child_pid(self) -> int:
        """The host pid of the forked child; the helper has exited (and is reaped)."""
        message = self._expect()
        self.proc.wait()
        if not message.startswith(b"pid "):
            raise StepError(SETUP_FAILED, f"unexpected message from the helper: {message!r}")
        return int(message.split()[1])

    def go(self, tag: str) -> None:
        self.channel.send(f"go {tag}")

    def finish(self) -> None:
        """Return at EOF (the command was exec'd or the child died); raise on an error. A
        pty's master that comes meanwhile is kept in ``pty``."""
        while True:
            message, fds = self.channel.recv_fds()
            if message == b"pty" and len(fds) == 1 and self.pty is None:
                self.pty = fds[0]
                continue
            for fd in fds:
                os.close(fd)
            if not message:
                return
            raise_if_error(message)
            raise StepError(SETUP_FAILED, f"unexpected message from the child: {message!r}")

    def take_pty(self) -> int | None:
        """The pty's master, now the caller's to close."""
        master, self.pty = self.pty, None
        return master

    def close(self) -> None:
        if self.pty is not None:
            os.close(self.pty)
            self.pty = None
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _expect(self) -> bytes:
        message = self.channel.recv()
        if not message:
            self.proc.wait()
            raise StepError(SETUP_FAILED, f"the helper died (status {self.proc.returncode})")
        raise_if_error(message)
        return message


def raise_if_error(message: bytes) -> None:
    """Raise the StepError an ``error CODE MESSAGE`` message tells of."""
    if message.startswith(b"error "):
        _, code, text = message.decode(errors="replace").split(" ", 2)
        raise StepError(int(code), text)


class _Forked:
    """A helper forked from this process, with the little of Popen's interface used."""

    def __init__(self, serve: Callable[[Channel], typing.NoReturn], ours: socket.socket,
                 theirs: socket.socket, stdio: tuple[int, int, int] | None) -> None:  # fmt: skip
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:  # never returns into the caller's code
            try:
                ours.close()
                for target, fd in enumerate(stdio or ()):
                    if fd != target:
                        os.dup2(fd, target)
                serve(Channel(theirs))
            finally:
                os._exit(SETUP_FAILED)
        theirs.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, 9)


def inherited_channel(fd: int) -> Channel:
    """The child's end, from the fd number on its command line; close-on-exec from now on."""
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    return Channel(sock)
