"""Running a command on a real terminal: a pty whose slave is the command's controlling
terminal and stdin/stdout/stderr, as a shell in a terminal window runs it. What the
command printed is read from the master; what it typed into the terminal (TIOCSTI) is what
the terminal's next reader, the user's shell, would read from the slave afterwards."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import tty
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from patience import Deadline

DEADLINE = 120.0  # generous: the machine is shared; every wait below is on an event


@dataclass
class Session:
    output: bytes  # what the command wrote to the terminal
    code: int
    typed: bytes  # what landed in the terminal's input queue


def _controlling() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def run(argv: Sequence[str], env: Mapping[str, str],
        script: Sequence[tuple[bytes, bytes]] = (), size: tuple[int, int] = (24, 80),
        resize: tuple[bytes, tuple[int, int]] | None = None,
        cwd: str | None = None) -> Session:  # fmt: skip
    """Run *argv* on a fresh terminal of *size*; *script*: (seen, typed) pairs, each *typed*
    sent once the output so far holds *seen*; *resize*: once *seen*, resize the terminal
    (the kernel then sends SIGWINCH to the command, as a terminal window would)."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: typed input is read back byte for byte
    set_size(master, *size)
    try:
        proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave,
                                env=dict(env), start_new_session=True, cwd=cwd,
                                preexec_fn=_controlling)  # fmt: skip
        output = b""
        todo = list(script)
        deadline = Deadline(DEADLINE)
        while proc.poll() is None and not deadline.expired():
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                output += os.read(master, 65536)
            if resize is not None and resize[0] in output:
                set_size(master, *resize[1])
                resize = None
            if todo and todo[0][0] in output:
                os.write(master, todo.pop(0)[1])
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        os.set_blocking(master, False)
        os.set_blocking(slave, False)
        while True:  # what was written before it exited
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            output += chunk
        try:
            typed = os.read(slave, 65536)
        except BlockingIOError:
            typed = b""
        return Session(output, code, typed)
    finally:
        os.close(master)
        os.close(slave)
