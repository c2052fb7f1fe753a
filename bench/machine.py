"""What a result depends on besides the code: the machine, its load, and the peers' versions.

Read-only: runs ``--version`` commands and reads /proc; changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from pathlib import Path

from bench.systems import System


def describe() -> dict[str, object]:
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hostname": platform.node(),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def version(system: System) -> str:
    """The line of ``--version`` output that names the program (first line otherwise)."""
    try:
        done = subprocess.run(
            system.version, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    lines = [ln.strip() for ln in (done.stdout + "\n" + done.stderr).splitlines() if ln.strip()]
    if system.kind == "kernel":
        return f"Linux {lines[0]}" if lines else "unknown"
    for line in lines:
        if system.name in line and "version" in line.lower():
            return line
    return lines[0] if lines else f"unknown (exit {done.returncode})"


def fusermount_version() -> str:
    try:
        done = subprocess.run(
            ["fusermount3", "--version"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "unavailable"
    return (done.stdout + done.stderr).strip().splitlines()[0]


def source_state(repo: Path) -> str:
    """The unionfs code under test: commit, and a digest of the working tree's unionfs/*.py
    (others may be editing it while we measure: compare it at the start and the end)."""
    digest = hashlib.sha256()
    for path in sorted((repo / "unionfs").rglob("*.py")):
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "unionfs"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        head, dirty = "", ""
    changes = f" + {len(dirty.splitlines())} uncommitted change(s)" if dirty else ""
    return f"git {head or '?'}{changes}, tree {digest.hexdigest()[:12]}"
