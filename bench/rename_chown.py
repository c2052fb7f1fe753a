"""Time `mv` of a lower directory of 10,000 files and `chown -R` over a 1 GiB lower tree.

    sudo .venv/bin/python -m bench.rename_chown [--files 10000] [--gib 1] [--runs 3]

Each system gets a fresh upper and workdir for every run, over the same lower layer: a
directory ``many`` of N empty files and a tree ``big`` of 64 files holding 1 GiB of real
data (written once). Prints seconds (median of the runs) and the bytes the upper
filesystem allocated after ``chown -R``. unionfs runs with its defaults
(``redirect_dir=on``) and with ``metacopy=on`` as well; kernel overlayfs with its defaults
and with ``redirect_dir=on,metacopy=on``; fuse-overlayfs and unionfs-fuse as they come.
Everything mounted is unmounted, and every daemon started is ended by its own pid.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

Command = Callable[[Path, Path, Path, Path], list[str]]


def _unionfs(extra: str) -> Command:
    def command(lower: Path, upper: Path, work: Path, mnt: Path) -> list[str]:
        opts = f"lowerdir={lower},upperdir={upper},workdir={work}{extra}"
        return [sys.executable, "-m", "unionfs", "mount", "-f", "-o", opts, str(mnt)]

    return command


def _kernel(extra: str) -> Command:
    def command(lower: Path, upper: Path, work: Path, mnt: Path) -> list[str]:
        opts = f"lowerdir={lower},upperdir={upper},workdir={work}{extra}"
        return ["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)]

    return command


def _fuse_overlayfs(lower: Path, upper: Path, work: Path, mnt: Path) -> list[str]:
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    return ["fuse-overlayfs", "-f", "-o", opts, str(mnt)]


def _unionfs_fuse(lower: Path, upper: Path, work: Path, mnt: Path) -> list[str]:
    branches = f"{upper}=RW:{lower}=RO"
    return ["/usr/bin/unionfs", "-f", "-o", "cow,hide_meta_files", branches, str(mnt)]


SYSTEMS: dict[str, tuple[Command, bool]] = {  # name -> (command, is a FUSE daemon)
    "unionfs (metacopy=on)": (_unionfs(",metacopy=on"), True),
    "unionfs (defaults)": (_unionfs(""), True),
    "kernel (defaults)": (_kernel(""), False),
    "kernel (redirect_dir,metacopy)": (_kernel(",redirect_dir=on,metacopy=on"), False),
    "fuse-overlayfs": (_fuse_overlayfs, True),
    "unionfs-fuse": (_unionfs_fuse, True),
}


def build_lower(lower: Path, files: int, gib: int) -> None:
    many = lower / "many"
    many.mkdir(parents=True)
    for i in range(files):
        (many / f"f{i:05d}").touch()
    big = lower / "big"
    for i in range(64):
        sub = big / f"d{i % 8}"
        sub.mkdir(parents=True, exist_ok=True)
        chunk = os.urandom(1 << 20)
        with open(sub / f"f{i}", "wb") as out:
            for _ in range(gib * 16):  # 64 files x 16 MiB = 1 GiB
                out.write(chunk)


def allocated(top: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def one_run(name: str, lower: Path, scratch: Path) -> tuple[float, float, int]:
    command, fuse = SYSTEMS[name]
    place = Path(tempfile.mkdtemp(dir=scratch))
    upper, work, mnt = place / "upper", place / "work", place / "mnt"
    for d in (upper, work, mnt):
        d.mkdir()
    proc = None
    argv = command(lower, upper, work, mnt)
    if fuse:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name}: did not mount")
            time.sleep(0.02)
    else:
        subprocess.run(argv, check=True)
    try:
        mv = timed(["mv", "many", "moved"], mnt)
        chown = timed(["chown", "-R", "1234:1234", "big"], mnt)
        written = allocated(upper)
    finally:
        unmount = ["fusermount3", "-u"] if fuse else ["umount"]
        subprocess.run([*unmount, str(mnt)], check=False)
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(place)
    return mv, chown, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--gib", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", action="append", help="a system name (repeatable)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="unionfs-bench-rc-"))
    try:
        lower = scratch / "lower"
        build_lower(lower, args.files, args.gib)
        print(f"| system | mv {args.files} files s | chown -R {args.gib} GiB s | upper after |")
        print("|---|---|---|---|")
        for name in args.only or list(SYSTEMS):
            runs = [one_run(name, lower, scratch) for _ in range(args.runs)]
            mv = statistics.median(r[0] for r in runs)
            chown = statistics.median(r[1] for r in runs)
            written = max(r[2] for r in runs)
            print(f"| {name} | {mv:.3f} | {chown:.3f} | {written / (1 << 20):.1f} MiB |")
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
