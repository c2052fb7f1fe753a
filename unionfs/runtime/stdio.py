"""The container's stdin, stdout and stderr: never the caller's terminal.

A terminal fd in a container lets it type into the caller's shell (TIOCSTI) or read its
keystrokes, so, as podman: without ``-t`` each of the caller's fds that is a terminal is
replaced by a pipe that the runtime relays, and stdin is /dev/null unless ``-i``; other fds
(files, pipes) are passed as they are. With ``-t`` the container opens a pty of its own
devpts and sends the master here (``executor``'s Terminal step): the runtime relays it,
puts the caller's terminal in raw mode (with ``-i``) and passes window-size changes on.
``Streams`` is used in order: ``child_fds`` (for the helper), ``started``, ``set_pty``,
``relay`` (until the process exits), ``restore`` (the terminal), ``close`` (always). A
detached container (``log``: a ``ctrlog.Sink``) reads /dev/null and writes into its log.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import struct
import termios
import tty
import typing

from unionfs.runtime.ctrlog import Sink

CHUNK = 1 << 16


def _winsize(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


class _Pump:
    """Bytes from *src* to *dst*. Invariant: ``buf`` holds what was read, not yet written."""

    def __init__(self, src: int, dst: int, close_dst: bool) -> None:
        self.src, self.dst, self.close_dst = src, dst, close_dst
        self.buf = b""
        self.open = True

    def read(self) -> None:
        try:
            data = os.read(self.src, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: a pty master whose last slave closed
                raise
            data = b""
        if data:
            self.buf += data
        else:
            self.finish()

    def write(self) -> None:
        try:
            done = os.write(self.dst, self.buf)
        except BlockingIOError:
            return
        except BrokenPipeError:  # the reader went away: drop what is left, keep draining
            done = len(self.buf)
        self.buf = self.buf[done:]

    def finish(self) -> None:
        self.open = False
        if self.close_dst:
            with contextlib.suppress(OSError):
                os.close(self.dst)


class _LogPump(_Pump):
    """Bytes from *src* into a detached container's log: nothing is ever held back."""

    def __init__(self, src: int, sink: Sink, stream: str) -> None:
        super().__init__(src, -1, False)
        self.sink, self.stream = sink, stream

    def read(self) -> None:
        while self.open:  # all there is now: the drain after the exit reads once
            super().read()
            if not self.buf:
                return
            self.sink.write(self.stream, self.buf)
            self.buf = b""


class Streams:
    """What the container's process gets as fds 0, 1, 2, and the relaying of it."""

    def __init__(self, interactive: bool, terminal: bool, log: Sink | None = None) -> None:
        self.interactive = interactive and log is None
        self.terminal = terminal
        self.log = log
        self.child: list[int] = []  # the helper's 0, 1, 2
        self._ours: list[int] = []  # fds to close at the end
        self._theirs: list[int] = []  # the child's ends, closed once it started
        self.pumps: list[_Pump] = []
        self.master: int | None = None
        self._saved_mode: list[typing.Any] | None = None
        self._setup()

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        self._ours += [r, w]
        return r, w

    def _setup(self) -> None:
        if self.log is not None:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self._ours.append(null)
            self.child.append(null)
            for stream in ("stdout", "stderr"):
                r, w = self._pipe()
                os.set_blocking(r, False)
                self.child.append(w)
                self._theirs.append(w)
                self.pumps.append(_LogPump(r, self.log, stream))
            return
        if self.interactive and not self.terminal and os.isatty(0):
            r, w = self._pipe()
            os.set_blocking(w, False)
            self.child.append(r)
            self._theirs.append(r)
            self.pumps.append(_Pump(0, w, True))
        elif self.interactive and not self.terminal:
            self.child.append(0)
        else:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self._ours.append(null)
            self.child.append(null)
        for fd in (1, 2):
            if os.isatty(fd) or self.terminal:  # with -t: only what runs before the pty
                r, w = self._pipe()
                os.set_blocking(r, False)
                self.child.append(w)
                self._theirs.append(w)
                self.pumps.append(_Pump(r, fd, False))
            else:
                self.child.append(fd)

    def child_fds(self) -> tuple[int, int, int]:
        return self.child[0], self.child[1], self.child[2]

    def started(self) -> None:
        """The helper holds its ends: ours go, so that EOF comes when the container's go."""
        for fd in self._theirs:
            self._ours.remove(fd)
            os.close(fd)
        self._theirs = []

    def set_pty(self, master: int) -> None:
        """Relay the container's pty (*master*, received from it); with -i the caller's
        terminal goes raw, so that every key reaches the container's own terminal."""
        self.master = master
        self._ours.append(master)
        os.set_blocking(master, False)
        if self.log is not None:
            self.pumps.append(_LogPump(master, self.log, "stdout"))
            return
        self.pumps.append(_Pump(master, 1, False))
        if self.interactive:
            self.pumps.append(_Pump(0, master, False))
            if os.isatty(0):
                self._saved_mode = termios.tcgetattr(0)
                tty.setraw(0)
        self.resize()

    def resize(self) -> None:
        """The caller's window size onto the pty (the kernel then signals SIGWINCH)."""
        if self.master is None:
            return
        size = next((s for s in map(_winsize, (0, 1, 2)) if s is not None), None)
        if size is not None and struct.unpack("HHHH", size)[:2] != (0, 0):
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def relay(self, pid: int) -> None:
        """Relay until process *pid* has exited, then what it left in the pipes."""
        if not self.pumps:
            return
        pidfd = os.pidfd_open(pid)
        try:
            while True:
                wanted = {pidfd: select.POLLIN}
                for pump in self.pumps:  # one fd may be one pump's src and another's dst
                    if pump.buf:
                        wanted[pump.dst] = wanted.get(pump.dst, 0) | select.POLLOUT
                    elif pump.open:
                        wanted[pump.src] = wanted.get(pump.src, 0) | select.POLLIN
                poller = select.poll()
                for fd, mask in wanted.items():
                    poller.register(fd, mask)
                ready = dict(poller.poll())
                if pidfd in ready:
                    break
                for pump in self.pumps:
                    if pump.buf and ready.get(pump.dst, 0) & (select.POLLOUT | select.POLLERR):
                        pump.write()
                    elif pump.open and not pump.buf and pump.src in ready:
                        pump.read()
        finally:
            os.close(pidfd)
        self._drain()

    def _drain(self) -> None:
        """What the exited process wrote is still in the pipes or the pty: pass it on."""
        for pump in self.pumps:
            if pump.src == 0:
                continue  # the caller's input has nowhere to go now
            while True:
                if pump.buf:
                    select.select([], [pump.dst], [])
                    pump.write()
                    continue
                if not pump.open:
                    break
                pump.read()
                if not pump.buf and pump.open:
                    break  # nothing more now (a process the container left holds it open)

    def restore(self) -> None:
        """The caller's terminal as it was (before anything more is printed on it)."""
        if self._saved_mode is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(0, termios.TCSADRAIN, self._saved_mode)
            self._saved_mode = None

    def close(self) -> None:
        self.restore()
        for fd in self._ours + self._theirs:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._ours, self._theirs = [], []
