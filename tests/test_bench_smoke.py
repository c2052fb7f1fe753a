"""The benchmark harness still runs end to end: a tiny stack, unionfs (with and without its
index) and kernel overlayfs, three workloads, one run. It checks that the table and the JSON
come out and that unionfs measured cleanly; it says nothing about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from patience import scaled

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = ("stat-all", "read-all", "create-files")


def test_bench_runs_on_a_tiny_stack_and_writes_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    scratch = tmp_path / "scratch"
    cmd = [
        sys.executable, "-m", "bench", "--scale", "0.002", "--runs", "1", "--layers", "1,2",
        "--passes", "hot,warm", "--systems", "unionfs,unionfs-noindex,kernel",
        "--workloads", ",".join(WORKLOADS), "--cache", str(tmp_path / "cache"),
        "--scratch", str(scratch), "--out", str(out), "--timeout", str(round(scaled(60))),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=scaled(300))
    assert done.returncode == 0, done.stderr[-3000:]

    assert "| stat-all | 2 | warm | unionfs |" in done.stdout
    assert "Merged-view check: all" in done.stdout, done.stdout[:3000]
    assert (out / "table.md").read_text().strip() == done.stdout.strip()

    doc = json.loads((out / "results.json").read_text())
    assert doc["machine"]["cores"] >= 1
    assert set(doc["versions"]) >= {"unionfs", "kernel"}
    measured = {(s["workload"], s["layers"], s["pass"], s["system"]) for s in doc["samples"]}
    for system in ("unionfs", "unionfs-noindex", "kernel"):
        assert ("stat-all", 2, "hot", system) in measured
        assert ("read-all", 1, "warm", system) in measured
        assert ("create-files", 1, "hot", system) in measured
    for s in doc["samples"]:
        assert s["error"] is None and s["seconds"] > 0, s
        assert not s["log_problems"], s
    ratios = [r["x_kernel"] for r in doc["summary"] if r["system"] == "unionfs"]
    assert ratios and all(r > 0 for r in ratios)
    assert list(scratch.iterdir()) == [], "the run's scratch dir was not removed"
