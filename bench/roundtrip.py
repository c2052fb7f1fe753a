"""The round-trip micro benchmark of issue 20: N x statx(AT_STATX_FORCE_SYNC) of one file,
each a GETATTR the daemon must answer, through unionfs (one or more interpreters, e.g. a
venv with another pyfuse3) and fuse-overlayfs on the same one-layer stack, in interleaved
rounds. Prints the median wall time per call and the daemon's CPU time per request.
Writes only below a scratch directory in /tmp, removed at the end.

    python -m bench.roundtrip [--n 20000] [--rounds 5] NAME=PYTHON[:PYTHONPATH] ... fuse-overlayfs
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
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cputime(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("systems", nargs="+", help="NAME=PYTHON[:PYTHONPATH], or fuse-overlayfs")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="unionfs-roundtrip-"))
    prog = base / "roundtrip"
    subprocess.run(["gcc", "-O2", "-o", str(prog), str(HERE / "roundtrip.c")], check=True)
    lower = base / "lower"
    lower.mkdir()
    (lower / "f").write_text("x")
    mounted: dict[str, tuple[Path, subprocess.Popen[bytes]]] = {}
    try:
        for spec in args.systems:
            name, _, rest = spec.partition("=")
            mnt = base / f"mnt-{name}"
            mnt.mkdir()
            env = None
            if name == "fuse-overlayfs":
                argv = ["fuse-overlayfs", "-f", "-o", f"lowerdir={lower}", str(mnt)]
            else:
                py, _, path = rest.partition(":")
                up, work = base / f"up-{name}", base / f"work-{name}"
                up.mkdir()
                work.mkdir()
                opts = f"lowerdir={lower},upperdir={up},workdir={work},indexdir=off"
                argv = [py or sys.executable, "-m", "unionfs", "mount", "-f", "-o", opts, str(mnt)]
                env = dict(os.environ, PYTHONPATH=path) if path else None
            with open(base / f"{name}.log", "wb") as log:
                proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
            mounted[name] = (mnt, proc)
            while not os.path.ismount(mnt):
                if proc.poll() is not None:
                    sys.exit(f"roundtrip: {name} did not mount (see {base / name}.log)")
                time.sleep(0.05)
        wall: dict[str, list[float]] = {n: [] for n in mounted}
        cpu: dict[str, list[float]] = {n: [] for n in mounted}
        for _ in range(args.rounds):
            for name, (mnt, proc) in mounted.items():
                before = cputime(proc.pid)
                out = subprocess.run([str(prog), str(mnt / "f"), str(args.n)],
                                     capture_output=True, text=True, check=True)  # fmt: skip
                wall[name].append(float(out.stdout))
                cpu[name].append((cputime(proc.pid) - before) / args.n * 1e6)
    finally:
        for mnt, proc in mounted.values():
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
            proc.wait()
        if not any(os.path.ismount(mnt) for mnt, _ in mounted.values()):
            shutil.rmtree(base)
    print(f"load {os.getloadavg()}; {args.n} x statx(AT_STATX_FORCE_SYNC), {args.rounds} rounds")
    print("| system | us per round trip, median (min-max) | daemon CPU us per request, median |")
    print("|---|---:|---:|")
    for name in mounted:
        w = wall[name]
        print(f"| {name} | {statistics.median(w):.1f} ({min(w):.1f}-{max(w):.1f}) "
              f"| {statistics.median(cpu[name]):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
