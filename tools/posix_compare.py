#!/usr/bin/env python3
"""Run a TAP file-system test suite (pjdfstest) on kernel overlayfs and on unionfs, compare.

    tools/posix_compare.py /path/to/pjdfstest/tests [TEST ...] [--lower] [--keep-logs DIR]

As root. Each system gets a fresh ``lowerdir/upperdir/workdir`` stack under /tmp and the
suite runs (``prove -rv``) in a fresh directory on the mount: a new directory (upper only),
or with ``--lower`` a directory of the lower layer (so every create copies its parent up).
Prints the pass counts of both and every test whose result differs. The suite is not ours:
fetch and build it outside this repository (its ``pjdfstest`` binary beside ``tests/``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
Result = dict[tuple[str, int], str]


def run_on(kind: str, tests: list[str], lower: bool, log: Path) -> Result:
    base = Path(tempfile.mkdtemp(prefix=f"posix-{kind}-"))
    for d in ("lower/low", "upper", "work", "mnt", "index"):
        (base / d).mkdir(parents=True)
    for d in (base, base / "lower", base / "upper", base / "mnt"):
        d.chmod(0o755)
    (base / "lower/low").chmod(0o777)
    opts = f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work"
    mnt = base / "mnt"
    if kind == "kernel":
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], check=True)
    else:
        venv = REPO / ".venv/bin/python"
        python = str(venv) if venv.exists() else sys.executable
        opts += f",allow_other,default_permissions,indexdir={base}/index"
        mount = [python, "-m", "unionfs", "mount", "-o", opts, str(mnt)]
        subprocess.run(mount, check=True, cwd=REPO)
    try:
        where = mnt / "low" if lower else mnt / "t"
        where.mkdir(mode=0o777, exist_ok=True)
        where.chmod(0o777)
        with open(log, "w") as out:
            subprocess.run(["prove", "-rv", *tests], cwd=where, stdout=out, stderr=out)
    finally:
        if kind == "kernel":
            subprocess.run(["umount", str(mnt)], check=False)
        elif subprocess.run(["fusermount3", "-u", str(mnt)], check=False).returncode:
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
        shutil.rmtree(base, ignore_errors=True)
    return parse(log)


def parse(log: Path) -> Result:
    """(test file, number) -> "ok" or "not ok"; TODO tests count as they are reported."""
    results: Result = {}
    current = None
    for line in log.read_text(errors="replace").splitlines():
        if m := re.match(r"^(\S+\.t) \.+", line):
            current = m.group(1)
        elif current and (m := re.match(r"^(not ok|ok) (\d+)", line)):
            results[(current, int(m.group(2)))] = m.group(1)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", help="the suite's tests directory (pjdfstest/tests)")
    p.add_argument("tests", nargs="*", help="test files or directories (default: all)")
    p.add_argument("--lower", action="store_true", help="run in a directory of the lower layer")
    p.add_argument("--keep-logs", type=Path, help="write the two prove logs here")
    args = p.parse_args()
    tests = [os.path.abspath(t) for t in (args.tests or [args.suite])]
    logs = args.keep_logs or Path(tempfile.mkdtemp(prefix="posix-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    kernel = run_on("kernel", tests, args.lower, logs / "kernel.log")
    union = run_on("unionfs", tests, args.lower, logs / "unionfs.log")
    for name, res in (("kernel overlayfs", kernel), ("unionfs", union)):
        ok = sum(r == "ok" for r in res.values())
        print(f"{name}: {ok} ok of {len(res)}")
    differ = sorted(k for k in kernel.keys() & union.keys() if kernel[k] != union[k])
    missing = sorted(kernel.keys() ^ union.keys())
    for f, n in differ:
        print(f"differs: {f} {n}: kernel {kernel[(f, n)]}, unionfs {union[(f, n)]}")
    for f, n in missing:
        print(f"only one ran: {f} {n}")
    print(f"logs: {logs}")
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
