"""How long a test waits for what is sure to happen, on a machine that may be busy.

A test waits for an event (a mount showing up, a process ending, a file appearing), never
for a fixed time. A deadline only decides when a wait counts as hung, so it is generous
and stretched by the machine's load: ``Deadline(s)`` expires after *s* seconds times the
highest load factor (runnable tasks per CPU, at least 1) seen while waiting, so a machine
that becomes busy mid-wait stretches it. ``exit_of`` waits for a process as long as it
(or a child of it) still makes progress, so a daemon that is still flushing is never
killed. ``UNIONFS_TEST_PATIENCE`` multiplies every deadline (a slow machine, a tracer).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

POLL = 0.02


def _multiplier() -> float:
    return float(os.environ.get("UNIONFS_TEST_PATIENCE", "1") or 1)


def load_factor() -> float:
    """Runnable tasks per CPU (the larger of the 1-minute average and right now), >= 1."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            fields = f.read().split()
        runnable = max(float(fields[0]), float(fields[3].split("/")[0]))
    except (OSError, IndexError, ValueError):
        return 1.0
    return max(1.0, runnable / (os.cpu_count() or 1))


def scaled(seconds: float) -> float:
    """*seconds* stretched by the load now: for a one-shot ``timeout=`` of a command that
    is expected to finish (a hang guard, never a measurement)."""
    return seconds * load_factor() * _multiplier()


class Deadline:
    """*seconds* of an idle machine, stretched by the highest load seen while waiting."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds * _multiplier()
        self.start = time.monotonic()
        self.factor = load_factor()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        self.factor = max(self.factor, load_factor())
        return max(0.0, self.seconds * self.factor - self.elapsed())

    def expired(self) -> bool:
        return self.left() <= 0.0

    def __str__(self) -> str:
        return f"{self.elapsed():.1f}s (load factor up to {self.factor:.1f})"


def wait_until(done: Callable[[], object], seconds: float, interval: float = POLL) -> bool:
    """Poll *done* until it is true (True) or a ``Deadline(seconds)`` expires (False)."""
    deadline = Deadline(seconds)
    while not done():
        if deadline.expired():
            return bool(done())
        time.sleep(interval)
    return True


def children(pid: int) -> list[int]:
    """The pids of *pid*'s children (of every thread of it)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below *pid*: its children, theirs, and so on."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        if p not in found:
            found.append(p)
            todo += children(p)
    return found


def progress(pid: int) -> tuple[int, ...]:
    """What grows while *pid* or its descendants work: CPU ticks and I/O syscalls (a
    process blocked for good shows the same tuple twice)."""
    total = [0, 0, 0]
    todo, seen = [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total[0] += int(fields[11]) + int(fields[12])  # utime + stime
            with open(f"/proc/{p}/io", encoding="ascii") as f:
                io = dict(line.split(": ") for line in f.read().splitlines())
            total[1] += int(io["syscr"]) + int(io["syscw"])
            total[2] += int(io["write_bytes"])
            todo += children(p)
        except (OSError, IndexError, KeyError, ValueError):
            continue
    return (len(seen), *total)


def settled(pid: int, still: float = 0.2, seconds: float = 30.0) -> bool:
    """Wait until *pid* has made no progress for *still* seconds (it has finished what it
    was doing, however long the machine made it take); False if it kept going past
    ``Deadline(seconds)``, or True at once if it is gone."""
    deadline = Deadline(seconds)
    last, since = progress(pid), time.monotonic()
    while time.monotonic() - since < still:
        if deadline.expired():
            return False
        time.sleep(still / 4)
        now = progress(pid)
        if now != last:
            last, since = now, time.monotonic()
    return True


Process = subprocess.Popen[bytes] | subprocess.Popen[str]


def exit_of(proc: Process, quiet: float = 30.0, longest: float = 600.0) -> bool:
    """Wait for *proc* to end while it (or a descendant) makes progress; True when it
    ended, False when it made none for ``Deadline(quiet)``, or worked past
    ``Deadline(longest)`` (it is hung or looping: the caller kills it and fails). A
    daemon that is still flushing is never cut short."""
    last = progress(proc.pid)
    idle, limit = Deadline(quiet), Deadline(longest)
    while proc.poll() is None:
        try:  # back at once when it ends (a sleep here cost every mount of the suite)
            proc.wait(0.1)
            return True
        except subprocess.TimeoutExpired:
            pass
        now = progress(proc.pid)
        if now != last:
            last, idle = now, Deadline(quiet)
        elif idle.expired() or limit.expired():
            return proc.poll() is not None
    return True
