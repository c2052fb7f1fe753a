"""The benchmark harness still runs end to end: a tiny stack, unionfs (with and without its
index) and kernel overlayfs, a few workloads, one run; and the profile mode counts requests
on unionfs. It checks that the tables and the JSON come out and that unionfs measured
cleanly; it says nothing about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from patience import scaled

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # bench/ is no installed package: it runs from the checkout
    sys.path.insert(0, str(REPO))

from bench import fsops  # noqa: E402
from bench.fusetrace import Tracer  # noqa: E402

WORKLOADS = ("stat-all", "create-files", "small-writes")


def _bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    out = tmp_path / "out"
    scratch = tmp_path / "scratch"
    cmd = [
        sys.executable, "-m", "bench", "--scale", "0.002", "--runs", "1", "--big-mib", "1",
        "--cache", str(tmp_path / "cache"), "--scratch", str(scratch), "--out", str(out),
        "--timeout", str(round(scaled(120))), *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=scaled(300))
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(scratch.iterdir()) == [], "the run's scratch dir was not removed"
    return done, out, scratch


def test_bench_runs_on_a_tiny_stack_and_writes_table_and_json(tmp_path: Path) -> None:
    done, out, _ = _bench(
        tmp_path, "--layers", "2", "--passes", "hot,warm",
        "--systems", "unionfs,unionfs-noindex,kernel", "--workloads", ",".join(WORKLOADS),
    )  # fmt: skip
    assert "| stat-all | 2 | warm | unionfs |" in done.stdout
    assert "Merged-view check: all" in done.stdout, done.stdout[:3000]
    assert (out / "table.md").read_text().strip() == done.stdout.strip()

    doc = json.loads((out / "results.json").read_text())
    assert doc["machine"]["cores"] >= 1
    assert set(doc["versions"]) >= {"unionfs", "kernel"}
    measured = {(s["workload"], s["layers"], s["pass"], s["system"]) for s in doc["samples"]}
    for system in ("unionfs", "unionfs-noindex", "kernel"):
        assert ("stat-all", 2, "hot", system) in measured
        assert ("stat-all", 2, "warm", system) in measured
        assert ("create-files", 2, "hot", system) in measured
        assert ("small-writes", 2, "hot", system) in measured
    for s in doc["samples"]:
        assert s["error"] is None and s["seconds"] > 0, s
        assert not s["log_problems"], s
        assert s["load"] is not None and s["requests"] is None
    ratios = [r["x_kernel"] for r in doc["summary"] if r["system"] == "unionfs"]
    assert ratios and all(r > 0 for r in ratios)


def test_profile_mode_counts_unionfs_requests_per_opcode(tmp_path: Path) -> None:
    try:
        with Tracer(tmp_path / "probe"):
            pass
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no FUSE tracepoints here: {exc}")
    done, out, _ = _bench(
        tmp_path, "--profile", "--systems", "unionfs", "--workloads", "lstat-all,link",
    )  # fmt: skip
    assert "## Profile: FUSE requests per workload" in done.stdout
    doc = json.loads((out / "results.json").read_text())
    by = {(s["workload"], s["pass"]): s for s in doc["samples"]}
    link = by[("link", "hot")]
    links = doc["sizes"]["links"]
    # Every link() is one LINK request, seen by the kernel and by unionfs's handler.
    assert link["requests"]["ops"]["LINK"]["requests"] == links
    assert link["handlers"]["link"]["requests"] == links
    assert by[("lstat-all", "warm")]["requests"]["requests"] >= 1
    assert "| LINK |" in done.stdout


def test_fsops_link_and_unlink_make_and_remove_the_names(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    fsops.link(str(target), 5)
    assert target.stat().st_nlink == 6
    fsops.unlink(str(tmp_path), 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_fsops_dpkg_installs_then_upgrades_leaving_no_temporaries(tmp_path: Path) -> None:
    fsops.dpkg(str(tmp_path), 100)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith((".dpkg-new", ".dpkg-tmp", "-new"))]
    payload = [p for p in files if p.name.startswith("file")]
    assert len(payload) == 100
    assert all(p.stat().st_nlink == 1 and p.stat().st_mtime == 1700000001 for p in payload)
    assert (tmp_path / "var/lib/dpkg/status").read_text().count("Package:") == 2


def test_fusetrace_pairs_sends_with_ends_per_opcode() -> None:
    from bench.fusetrace import parse

    lines = [
        b"  cat-12 [000] .....  100.000100: fuse_request_send: connection 52 req 2 opcode 1 "
        b"(FUSE_LOOKUP) len 45",
        b"  cat-12 [000] .....  100.000300: fuse_request_send: connection 52 req 4 opcode 22 "
        b"(FUSE_GETXATTR) len 60",
        b"  python-9 [001] ..... 100.000400: fuse_request_end: connection 52 req 2 len 144 "
        b"error 0",
        b"  python-9 [001] ..... 100.000500: fuse_request_end: connection 52 req 4 len 16 "
        b"error -61",
        b"  cat-12 [000] .....  100.000600: fuse_request_send: connection 52 req 6 opcode 2 "
        b"(FUSE_FORGET) len 48",
    ]
    trace = parse([b"\n".join(lines[:3]) + b"\n", b"\n".join(lines[3:]) + b"\n"])
    doc = trace.as_json()
    assert doc["requests"] == 3
    ops = doc["ops"]
    assert ops["LOOKUP"] == {"requests": 1, "answered": 1, "seconds": 0.0003, "errors": {}}
    assert ops["GETXATTR"]["errors"] == {61: 1}
    assert ops["FORGET"]["answered"] == 0
