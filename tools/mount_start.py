"""Time a mount's start: wall time to the first request served, and CPU time (issue 20).

    sudo .venv/bin/python tools/mount_start.py [--runs 15] [--layers 2] [CHECKOUT...]

For this checkout and each CHECKOUT (another unionfs source tree, run by this venv through
PYTHONPATH, as bench's unionfs-before), in turns: ``unionfs mount -f`` (bench's way) and
the mount-program form ``unionfs -o lowerdir=... MNT`` (podman's: returns once the mount is
live). Wall time is load-sensitive; the CPU time (user + system) much less: for ``-f`` it
is the daemon's own (every thread, from /proc schedstat) when its mountpoint first answers
a stat; for the mount-program form, the waiting parent's (which imports everything before
it forks) plus the daemon's up to that moment; all with UNIONFS_ZYGOTE=0. ``--zygote``:
this checkout once more through its zygote (its CPU is the client's alone: the worker's
fork is not counted). Prints medians; removes what it made (the zygote too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """On-CPU time of every thread of *pid* so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def daemon_pid(mnt: str) -> int | None:
    """The pid of the process serving *mnt*: the one holding /dev/fuse with *mnt* as its
    argument (the daemon of a mount-program start has no other name)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if mnt.encode() in argv and any(b"unionfs" in a for a in argv):
            return int(entry)
    return None


def unmount(mnt: str) -> None:
    for cmd in (["fusermount3", "-u", mnt], ["fusermount3", "-uz", mnt]):
        if not os.path.ismount(mnt):
            return
        subprocess.run(cmd, capture_output=True, check=False)


ZYGOTE = "+zygote"


def env_for(checkout: str | None) -> dict[str, str]:
    env = {**os.environ, "UNIONFS_ZYGOTE": "0"}  # the ordinary start (the zygote is the default)
    if checkout == ZYGOTE:
        env["UNIONFS_ZYGOTE"] = "1"
        env["UNIONFS_ZYGOTE_IDLE"] = "120"
        key, _, value = MARK.partition("=")
        env[key] = value
    elif checkout:
        env["PYTHONPATH"] = checkout
    return env


MARK = f"UNIONFS_BENCH_ZYGOTE={os.getpid()}"  # in the environment of the zygotes we start


def stop_zygotes() -> None:
    """The zygotes this run started (by pid: those with our mark in their environment)."""
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"unionfs.zygote.server" not in f.read().split(b"\0"):
                    continue  # a mount's worker shows its caller's environment, mark too
            with open(f"/proc/{pid}/environ", "rb") as f:
                if MARK.encode() in f.read().split(b"\0"):
                    os.kill(int(pid), 15)
        except (OSError, ValueError):
            continue


def start_foreground(opts: str, mnt: str, checkout: str | None) -> tuple[float, float]:
    argv = [sys.executable, "-m", "unionfs", "mount", "-f", "-o", opts, mnt]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env_for(checkout), stdin=subprocess.DEVNULL)
    try:
        while not os.path.ismount(mnt):  # a stat of the root: the first request served
            if proc.poll() is not None:
                raise SystemExit(f"mount_start: {argv} exited {proc.returncode}")
            time.sleep(0.001)
        wall = time.perf_counter() - start
        cpu = cpu_seconds(proc.pid)
    finally:
        unmount(mnt)
        proc.wait()
    return wall, cpu


def start_helper(opts: str, mnt: str, checkout: str | None) -> tuple[float, float]:
    argv = [sys.executable, "-m", "unionfs", "-o", opts, mnt]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env_for(checkout), stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"mount_start: {argv} exited {proc.returncode}")
    os.stat(mnt)
    pid = daemon_pid(mnt)
    daemon = cpu_seconds(pid) if pid else 0.0
    unmount(mnt)
    return wall, usage.ru_utime + usage.ru_stime + daemon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--files", type=int, default=200, help="files per layer")
    ap.add_argument("--zygote", action="store_true", help="also this checkout's zygote")
    ap.add_argument("checkouts", nargs="*", metavar="CHECKOUT")
    args = ap.parse_args()
    sides: list[str | None] = [None, *args.checkouts, *([ZYGOTE] if args.zygote else [])]
    print(f"load before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="mount-start-") as tmp:
        lowers = []
        for i in range(args.layers):
            layer = Path(tmp) / f"l{i}"
            for j in range(args.files):
                d = layer / f"d{j % 10}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"f{i}-{j}").write_text("x")
            lowers.append(str(layer))
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for i, side in enumerate(sides):
            index = os.path.join(tmp, f"index{i}")
            opts = f"lowerdir={':'.join(lowers)},indexdir={index}"
            start_foreground(opts, mnt, side)  # builds the index (starts a zygote): not timed
            if side == ZYGOTE:
                time.sleep(2)  # the zygote's imports, before the first timed start
        for _ in range(args.runs):
            for i, side in enumerate(sides):
                opts = f"lowerdir={':'.join(lowers)},indexdir={os.path.join(tmp, f'index{i}')}"
                name = side or "this"
                for mode, fn in (("-f", start_foreground), ("helper", start_helper)):
                    results.setdefault((name, mode), []).append(fn(opts, mnt, side))
        unmount(mnt)
        if args.zygote:
            stop_zygotes()
    print(f"load after: {os.getloadavg()[0]:.1f}; median of {args.runs}")
    print(f"{'checkout':<40} {'mode':<7} {'wall s':>8} {'cpu s':>8} {'min cpu':>8}")
    for (name, mode), rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"{name:<40} {mode:<7} {wall:>8.3f} {cpu:>8.3f} {min(r[1] for r in rows):>8.3f}")


if __name__ == "__main__":
    main()
