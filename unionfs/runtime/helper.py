"""The runtime's side of the helper process, and the channel both sides speak over.

The helper is ``python -m unionfs.runtime.child FD``: a fresh exec, so it has one thread.
Over one SOCK_SEQPACKET socket pair (a message per send, EOF when every holder closed) the
runtime sends the plan; the helper answers ``pid N`` after its ``Fork`` step; the runtime
answers ``go TAG`` once the child is in its cgroups; a failed step answers
``error CODE MESSAGE``. The child holds the socket close-on-exec, so EOF after ``go`` means
the command was exec'd. The helper must not be forked from a process with threads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

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

    def close(self) -> None:
        self.sock.close()


class Helper:
    """A started helper process, the runtime's view. Calls in order: ``send_plan``,
    ``child_pid``, ``go``, ``finish``; ``close`` always. It is started before its plan is
    known, so that Python's start-up overlaps other set-up work."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.channel = Channel(ours)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "unionfs.runtime.child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()

    def send_plan(self, steps: tuple[plan.Step, ...]) -> None:
        self.channel.send(plan.dumps(steps))

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
        """Return at EOF (the command was exec'd or the child died); raise on an error."""
        message = self.channel.recv()
        if message:
            self._raise_if_error(message)
            raise StepError(SETUP_FAILED, f"unexpected message from the child: {message!r}")

    def close(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _expect(self) -> bytes:
        message = self.channel.recv()
        if not message:
            self.proc.wait()
            raise StepError(SETUP_FAILED, f"the helper died (status {self.proc.returncode})")
        self._raise_if_error(message)
        return message

    @staticmethod
    def _raise_if_error(message: bytes) -> None:
        if message.startswith(b"error "):
            _, code, text = message.decode(errors="replace").split(" ", 2)
            raise StepError(int(code), text)


def inherited_channel(fd: int) -> Channel:
    """The child's end, from the fd number on its command line; close-on-exec from now on."""
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    return Channel(sock)
