"""The soak: eight processes of random operations for a bounded time, on kernel overlayfs
and on unionfs over identical layers on a loop-mounted ext4 (issue 16, last paragraph).

Each worker (``soak.py``) owns a subtree it alone changes, checks every outcome there (the
errno included) against its own model and the subtree against the model at the end, and
races the others in ``shared/``, where only the errnos a race can cause are allowed. Then,
still mounted and after ``syncfs``, the mount's view must equal the kernel's reading of the
upper (a read-only kernel overlay with the upper as its top layer); after unmount, a kernel
mount of the upper must show the same again. No daemon traceback (``unionfs_mount`` checks
its log). The kernel run keeps the model honest: what it finds is the test's own mistake.
A short run is in the default tier, a long one in the slow tier.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from mountutil import Dir, File, Whiteout, fresh_dir, kernel_overlay
from patience import Deadline
from soak import lower_tree
from treecmp import diff_trees, drop_unstatable, marker_leaks, snapshot
from writeutil import ext4, kernel_view, writable

WORKERS = 8
SHORT, LONG = 4.0, 90.0  # seconds of operations per run
OPTS = "redirect_dir=on"  # unionfs's default; the kernel's must match it
SOAK = Path(__file__).with_name("soak.py")
GRACE = 600.0  # past the workers' own deadline, before the mount is said to hang


def layers() -> list[Dir]:
    """The two lower layers: every worker's part of them, and ``shared/``."""
    built = []
    for part in (0, 1):
        spec: dict[str, bytes | None] = {"shared": None} if part == 1 else {}
        for worker in range(WORKERS):
            spec.update(lower_tree(worker)[part])
        built.append(nested(spec))
    return built


def nested(spec: dict[str, bytes | None]) -> Dir:
    root = Dir()
    for path, content in sorted(spec.items()):
        *parents, name = path.split("/")
        here = root
        for parent in parents:
            node = here.children[parent.encode()]
            assert isinstance(node, Dir)
            here = node
        if content is None:
            here.children[name.encode()] = Dir()
        elif content == b"WHITEOUT":
            here.children[name.encode()] = Whiteout()
        else:
            here.children[name.encode()] = File(content)
    return root


def run_workers(mnt: Path, seconds: float, seed: int) -> list[dict[str, object]]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(SOAK), str(mnt), str(i), str(seed + i), str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(WORKERS)
    ]
    for proc in procs:  # all built their models: go
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    reports = []
    deadline = Deadline(seconds + GRACE)  # stretched by load, as the workers' run is
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline.left()))
            assert proc.returncode == 0, f"worker failed: {err.decode()}"
            reports.append(json.loads(out))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"workers still running {GRACE}s past their end: a hang") from None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return reports


def syncfs(mnt: Path) -> str | None:
    """syncfs(2) of the mount: None, or the error it reported."""
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            return os.strerror(ctypes.get_errno())
        return None
    finally:
        os.close(fd)


def soak(tmp_path: Path, kernel: bool, seconds: float, seed: int) -> tuple[list[str], str]:
    """Everything found wrong, and a one-line summary of what ran."""
    disk = fresh_dir(tmp_path, "ext4")
    findings: list[str] = []
    reports: list[dict[str, object]] = []
    with ext4(disk, "512M"):
        mounted = writable(disk, layers(), kernel=kernel, opts=OPTS)
        try:
            with mounted as m:
                reports = run_workers(m.mnt, seconds, seed)
                for report in reports:
                    findings += report["findings"]  # type: ignore[arg-type]
                failed = syncfs(m.mnt)
                if failed:
                    findings.append(f"syncfs of the mount: {failed}")
                view = drop_unstatable(snapshot(m.mnt))
                findings += [f"marker shown: {leak}" for leak in marker_leaks(view)]
                reader = fresh_dir(disk, "reader")
                with kernel_overlay([m.upper, *m.lowers], reader):  # read-only: writes nothing
                    upper_now = drop_unstatable(snapshot(reader))
                findings += diff_trees(upper_now, view, ("kernel reading the upper", "mount"))
        except AssertionError as exc:  # the daemon's end: its exit, its log's tracebacks
            findings.append(daemon_problems(str(exc)))
            if not reports:
                raise
        after = kernel_view(disk, m.lowers, m.upper, OPTS)
        findings += diff_trees(after, view, ("kernel mount of the upper", "mount before"))
    ops: Counter[str] = Counter()
    for report in reports:
        ops.update(report["counts"])  # type: ignore[arg-type]
    total = sum(int(r["ops"]) for r in reports)  # type: ignore[call-overload]
    return findings, f"{total} operations, seed {seed}: {dict(sorted(ops.items()))}"


def daemon_problems(text: str) -> str:
    """The daemon's failure in a few lines: its first line, and each distinct traceback
    (handler, then the failing line) with how often it came."""
    handlers = re.findall(r"ERROR: (\w+)\(", text)
    lines = text.splitlines()
    causes: Counter[str] = Counter()
    for i, line in enumerate(lines):
        if line.startswith(("AssertionError", "OSError", "Error", "Exception")) or re.match(
            r"^\w+Error", line
        ):
            where = next((lines[j].strip() for j in range(i - 1, 0, -1)
                          if lines[j].strip().startswith("File ")), "?")  # fmt: skip
            causes[f"{line.strip()} at {where}"] += 1
    shown = "; ".join(f"{n} x {cause}" for cause, n in causes.most_common(8))
    return f"daemon: {lines[0]} (handlers: {dict(Counter(handlers))}; {shown})"


def check(findings: list[str], summary: str, label: str) -> None:
    shown = "\n".join(findings[:80])
    more = f"\n... and {len(findings) - 80} more" if len(findings) > 80 else ""
    kinds = "\n".join(f"  {n} x {kind}" for kind, n in categories(findings).most_common())
    assert not findings, (
        f"{label}: {len(findings)} findings ({summary})\nby kind:\n{kinds}\n{shown}{more}"
    )


def categories(findings: list[str]) -> Counter[str]:
    """Findings by kind: the operation and the errno it got, or that its result differed;
    a final state that differs from the model; a view that differs; the daemon; syncfs."""
    kinds: Counter[str] = Counter()
    for line in findings:
        op = re.match(r"w\d+ op \d+ ([\w ]+?): expected (.*), got \('([^']+)', '([A-Z]+)'\)$", line)
        if op:
            name, expected, step, err = op.groups()
            where = "" if step == "err" else f" at {step}"
            ok = " (expected ok)" if expected.startswith("('ok'") else ""
            kinds[f"{name}{where}: {err}{ok}"] += 1
        elif re.match(r"w\d+ op \d+ [\w ]+?: expected", line):
            kinds[line.split(":")[0].split(" ", 3)[3] + ": wrong result"] += 1
        elif re.match(r"w\d+ op \d+ shared", line):
            kinds[":".join(re.sub(r"^w\d+ op \d+ ", "", line).split(":")[:2])] += 1
        elif re.match(r"w\d+ final", line):
            kinds["final state differs from the model"] += 1
        elif re.match(r"w\d+ stopped", line):
            kinds["a worker stopped: " + line.rpartition(": ")[2][:60]] += 1
        elif view := re.match(r"^'.*': (?:(only in [^:]+)|(\w+): (.+?)=)", line):
            kinds[
                f"views differ: {view.group(1) or view.group(2) + ' (' + view.group(3) + ')'}"
            ] += 1
        else:
            kinds[line.split(":")[0][:80]] += 1
    return kinds


def seed_for(request: pytest.FixtureRequest, fixed: int) -> int:
    """A fixed seed in the default tier; a fresh one in the slow tier (it is in the
    failure message, to run the same again)."""
    if request.config.getoption("--run-slow") or "slow" in (
        request.config.getoption("markexpr") or ""
    ):
        return int.from_bytes(os.urandom(3), "big") * 100
    return fixed


def test_soak_kernel_overlayfs_agrees_with_the_models(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    findings, summary = soak(tmp_path, True, SHORT, seed_for(request, 1600))
    check(findings, summary, "kernel overlayfs (the models are wrong)")


def test_soak_unionfs_agrees_with_the_models_and_the_kernel(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    findings, summary = soak(tmp_path, False, SHORT, seed_for(request, 1600))
    check(findings, summary, "unionfs")


@pytest.mark.slow
def test_long_soak_kernel_overlayfs_agrees_with_the_models(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    findings, summary = soak(tmp_path, True, LONG, seed_for(request, 1700))
    check(findings, summary, "kernel overlayfs (the models are wrong)")


@pytest.mark.slow
def test_long_soak_unionfs_agrees_with_the_models_and_the_kernel(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    findings, summary = soak(tmp_path, False, LONG, seed_for(request, 1700))
    check(findings, summary, "unionfs")
