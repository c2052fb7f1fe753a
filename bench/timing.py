"""One timed shell command, and what a measurement records about it (``Sample``).

``sh`` runs a command in its own session, times it, charges it its processes' CPU time, and
turns a hang (killed after the timeout; the mount under it aborted if it cannot die) or a
non-zero exit into an error text. ``drop_caches`` is the cold pass's page-cache drop.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

KILL_WAIT = 10.0


@dataclass
class Sample:
    workload: str
    layers: int
    system: str
    pass_: str
    run: int
    seconds: float | None = None
    error: str | None = None
    note: str | None = None
    client_cpu: float | None = None  # user + sys of the timed command's processes
    daemon_cpu: float | None = None  # user + sys of the FUSE daemon during the pass
    mount_seconds: float | None = None
    log_problems: list[str] = field(default_factory=list)
    requests: dict[str, object] | None = None  # --profile: the kernel's count per opcode
    handlers: dict[str, dict[str, float]] | None = None  # --profile, unionfs: per handler
    load: float | None = None  # the machine's 1-minute load average when the pass ended

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d["pass"] = d.pop("pass_")
        return d


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def sh(
    cmd: str, timeout: float, on_hang: Callable[[], None] | None = None
) -> tuple[float, str | None, float]:
    """Run *cmd*; (wall seconds, error or None, CPU seconds of its processes).

    A command still running after *timeout* is a hang: its process group is killed, and if
    it cannot die (stuck in a FUSE request), *on_hang* aborts the mount under it.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["/bin/sh", "-c", cmd],
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    error = None
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        error = f"hang: killed after {timeout:g} s"
        err = b""
        os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=KILL_WAIT)
        except subprocess.TimeoutExpired:
            if on_hang is not None:
                on_hang()
            try:
                proc.communicate(timeout=KILL_WAIT)
            except subprocess.TimeoutExpired:
                error += " (unkillable, left behind)"
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if error is None and proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        error = f"exit {proc.returncode}: {last[0]}"[:300]
    return elapsed, error, cpu
