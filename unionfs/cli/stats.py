"""``unionfs stats [C...] [--no-stream]``: CPU, memory (use, peak, limit), pids and OOM kills
of running containers, read from their cgroups; refreshed every second like docker stats.
"""

from __future__ import annotations

import argparse
import sys
import time

from unionfs.errors import UserError
from unionfs.runtime import cgroups
from unionfs.runtime.cgroups import CgroupStats
from unionfs.runtime.enter import running
from unionfs.runtime.state import ContainerDirs, State, default_home, describe
from unionfs.runtime.units import format_bytes

HEADER = ("CONTAINER ID", "NAME", "CPU %", "CPU TIME", "MEM USAGE / LIMIT", "MEM PEAK",
          "PIDS", "OOM KILLS")  # fmt: skip


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stats", help="show containers' resource usage")
    p.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("containers", nargs="*", metavar="C", help="default: every running one")


def _sample(states: list[State]) -> tuple[float, dict[str, CgroupStats]]:
    return time.monotonic(), {s.id: cgroups.from_record(dict(s.cgroup)).stats() for s in states}


def _row(state: State, before: CgroupStats, now: CgroupStats, seconds: float) -> tuple[str, ...]:
    cpu = "-"
    if now.cpu_ns is not None and before.cpu_ns is not None and seconds > 0:
        cpu = f"{100 * (now.cpu_ns - before.cpu_ns) / (seconds * 1e9):.2f}%"
    cpu_time = f"{now.cpu_ns / 1e9:.2f}s" if now.cpu_ns is not None else "-"
    limit = format_bytes(now.memory_limit) if now.memory_limit is not None else "no limit"
    pids = "-" if now.pids is None else str(now.pids)
    if now.pids_limit is not None:
        pids += f" / {now.pids_limit}"
    oom = "-" if now.oom_kills is None else str(now.oom_kills)
    memory = f"{format_bytes(now.memory)} / {limit}"
    peak = format_bytes(now.memory_peak)
    return (state.short_id, state.name, cpu, cpu_time, memory, peak, pids, oom)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [HEADER, *rows])  # fmt: skip


def run(args: argparse.Namespace) -> int:
    dirs = ContainerDirs(default_home())

    def targets() -> list[State]:
        if args.containers:
            return [running(dirs, ref) for ref in args.containers]
        return [s for s in dirs.all() if describe(s) == "running"]

    states = targets()
    then, before = _sample(states)
    try:
        while True:
            time.sleep(args.interval / 2 if args.no_stream else args.interval)
            now, after = _sample(states)
            rows = [_row(s, before[s.id], after[s.id], now - then) for s in states]
            if not args.no_stream and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            print(_table(rows), flush=True)
            if args.no_stream:
                return 0
            try:
                states = targets()
            except UserError:
                return 0  # a named container has stopped
            then, before = now, {s.id: after.get(s.id) or _sample([s])[1][s.id] for s in states}
    except KeyboardInterrupt:
        return 0
