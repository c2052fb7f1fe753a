"""Signals sent to ``unionfs run``/``exec`` reach the container's process; waiting for it.

``SignalProxy`` states: before the process exists, a stopping signal (TERM, INT, HUP) is
kept, and ``check`` (called between set-up steps, never inside one, so that no half-made
mount or cgroup escapes the clean-up stack) raises ``Interrupted``; while it runs, every forwarded
signal is sent on, and a stopping one also arms a timer that SIGKILLs it after the stop
timeout (a PID 1 without a handler ignores SIGTERM, as under docker); once the process
is reaped the proxy is quiet: signals are remembered, never raised, so clean-up finishes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from types import FrameType

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)  # fmt: skip
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class SignalProxy:
    def __init__(self, stop_timeout: float) -> None:
        self.stop_timeout = stop_timeout
        self.target: int | None = None
        self.quiet = False
        self.received: int | None = None
        self.pending: int | None = None
        self._armed = False
        self._old: dict[int, object] = {}
        # With a pty the window size goes to the pty (the kernel signals its foreground
        # group); without, SIGWINCH is forwarded as any other signal.
        self.on_winch: Callable[[], None] | None = None

    def install(self) -> None:
        for signum in (*FORWARDED, signal.SIGALRM):
            self._old[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._old.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._old.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.quiet:
            self.received = self.received or signum
            return
        if signum == signal.SIGALRM:
            if self.target is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.target, signal.SIGKILL)
            return
        if signum == signal.SIGWINCH and self.on_winch is not None:
            self.on_winch()
            return
        if self.target is None:
            if signum in STOPPING and self.pending is None:
                self.pending = signum
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.target, signum)
        if signum in STOPPING and not self._armed and self.stop_timeout >= 0:
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, max(self.stop_timeout, 0.001))

    def check(self) -> None:
        """Raise ``Interrupted`` if a stopping signal came before there was a target."""
        if self.pending is not None:
            raise Interrupted(self.pending)

    def attach(self, pid: int) -> None:
        """From now on, forward to *pid* (unless a stopping signal came first)."""
        self.check()
        self.target = pid

    def attach_running(self, pid: int) -> None:
        """From now on, forward to *pid*, which already runs the command: a stopping
        signal kept until now is forwarded to it now (the command decides, as for any
        signal that comes once it runs)."""
        self.target = pid
        kept, self.pending = self.pending, None
        if kept is not None:
            self._handle(kept, None)

    def wait(self, pid: int, relay: Callable[[int], None] | None = None) -> int:
        """Wait for *pid* (our child) while forwarding, and while *relay(pid)* passes its
        output on (it returns once *pid* has exited); its exit code, 128+N for signal N.
        The proxy is quiet afterwards."""
        self.target = pid
        if relay is not None:
            relay(pid)
        _, status = os.waitpid(pid, 0)  # retried after each handler (PEP 475)
        self.quiet = True
        self.target = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        return exit_code(status)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class Child:
    """A child pid to be killed and reaped on the way out unless it was waited for."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.reaped = False

    def kill_and_reap(self) -> None:
        if self.reaped:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.reaped = True


def process_start(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])
