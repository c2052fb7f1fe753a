"""``unionfs stats [C...] [--no-stream]``: CPU, memory (use, peak, limit), pids and OOM kills
of running containers from their cgroups, refreshed every second, with podman's fields and
JSON keys (and ours: ``{{.MemPeak}}``, ``{{.OOMKills}}``). NET IO and BLOCK IO are not
measured: ``-- / --``, as docker shows what it cannot read.
"""

from __future__ import annotations

import argparse
import sys
import time

from unionfs.cli import containerinfo, humanize, report
from unionfs.errors import UserError
from unionfs.runtime import cgroups
from unionfs.runtime.cgroups import CgroupStats
from unionfs.runtime.enter import running
from unionfs.runtime.state import ContainerDirs, State, default_home, describe

DEFAULT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.PIDs}}\t"
           "{{.UpTime}}\t{{.AvgCPU}}\t{{.MemPeak}}\t{{.OOMKills}}")  # fmt: skip
HEADERS = {"CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemUsageBytes":
           "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET IO", "BlockIO": "BLOCK IO",
           "UpTime": "CPU TIME", "AvgCPU": "AVG CPU %", "PIDs": "PIDS", "MemPeak": "MEM PEAK",
           "OOMKills": "OOM KILLS"}  # fmt: skip


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stats", help="show containers' resource usage",
                       description=__doc__)  # fmt: skip
    p.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    p.add_argument("--no-reset", action="store_true", help="keep the screen between samples")
    p.add_argument("-a", "--all", action="store_true", help="accepted: only running ones count")
    p.add_argument("--interval", "-i", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between samples (default 1)")  # fmt: skip
    report.add_format_flags(p, what="sample", noheading=False)
    p.add_argument("--noheading", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("containers", nargs="*", metavar="C", help="default: every running one")


def _sample(states: list[State]) -> tuple[float, dict[str, CgroupStats]]:
    return time.monotonic(), {s.id: cgroups.from_record(dict(s.cgroup)).stats() for s in states}


def _host_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _fields(state: State, before: CgroupStats, now: CgroupStats,
            seconds: float) -> dict[str, object]:  # fmt: skip
    cpu = 0.0
    if now.cpu_ns is not None and before.cpu_ns is not None and seconds > 0:
        cpu = 100 * (now.cpu_ns - before.cpu_ns) / (seconds * 1e9)
    begun = containerinfo.started(state)
    alive = (time.time() - begun.timestamp()) if begun is not None else 0.0
    avg = 100 * (now.cpu_ns or 0) / 1e9 / alive if alive > 0 else 0.0
    limit = now.memory_limit if now.memory_limit is not None else _host_memory()
    used = now.memory or 0
    mem_perc = 100 * used / limit if limit else 0.0
    pids = "-" if now.pids is None else str(now.pids)
    cpu_time = f"{(now.cpu_ns or 0) / 1e9:.6g}s"
    return {
        "ID": state.short_id, "ContainerID": state.id, "Name": state.name,
        "CPUPerc": f"{cpu:.2f}%", "CPU": cpu, "AvgCPU": f"{avg:.2f}%",
        "MemUsage": f"{humanize.size(used)} / {humanize.size(limit or 0)}",
        "MemUsageBytes": f"{_binary(used)} / {_binary(limit or 0)}",
        "MemPerc": f"{mem_perc:.2f}%", "NetIO": "-- / --", "BlockIO": "-- / --", "PIDs": pids,
        "UpTime": cpu_time, "CPUNano": now.cpu_ns or 0, "Duration": int(alive * 1e9),
        "MemPeak": "-" if now.memory_peak is None else humanize.size(now.memory_peak),
        "OOMKills": "-" if now.oom_kills is None else str(now.oom_kills),
        "PIDsLimit": "-" if now.pids_limit is None else str(now.pids_limit),
    }  # fmt: skip


def _binary(n: int) -> str:
    value, unit = float(n), 0
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.4g}{units[unit]}"


def _json(fields: dict[str, object]) -> dict[str, object]:
    """One sample as ``podman stats --format json`` shows it (with ours added)."""
    keys = {"ID": "id", "Name": "name", "UpTime": "cpu_time", "CPUPerc": "cpu_percent",
            "AvgCPU": "avg_cpu", "MemUsage": "mem_usage", "MemPerc": "mem_percent",
            "NetIO": "net_io", "BlockIO": "block_io", "PIDs": "pids", "MemPeak": "mem_peak",
            "OOMKills": "oom_kills"}  # fmt: skip
    return {new: fields[old] for old, new in keys.items()}


def run(args: argparse.Namespace) -> int:
    store = ContainerDirs(default_home())

    def targets() -> list[State]:
        if args.containers:
            return [running(store, ref) for ref in args.containers]
        return [s for s in store.all() if describe(s) == "running"]

    states = targets()
    then, before = _sample(states)
    try:
        while True:
            time.sleep(args.interval / 2 if args.no_stream else args.interval)
            now, after = _sample(states)
            rows = [_fields(s, before[s.id], after[s.id], now - then) for s in states]
            if not args.no_stream and not args.no_reset and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            listing = report.Listing(rows, [_json(r) for r in rows], DEFAULT, HEADERS,
                                     json_indent=1)  # fmt: skip
            report.show(listing, args)
            if args.no_stream:
                return 0
            try:
                states = targets()
            except UserError:
                return 0  # a named container has stopped
            then, before = now, {s.id: after.get(s.id) or _sample([s])[1][s.id] for s in states}
    except KeyboardInterrupt:
        return 0
