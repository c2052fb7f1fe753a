"""From raw samples to what a reader compares: medians with min and max, the ratios against
kernel overlayfs and fuse-overlayfs, markdown tables, and the JSON file of raw runs.

Pure apart from ``write_json``: summaries are computed from the samples alone.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.timing import Sample
from bench.workloads import WORKLOADS

BASELINES = ("kernel", "fuse-overlayfs")
PASS_ORDER = {"cold": 0, "hot": 1, "warm": 2}


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    layers: int
    pass_: str
    system: str
    runs: int  # runs that produced a time
    median: float | None
    min: float | None
    max: float | None
    ratios: dict[str, float | None]  # baseline system -> median / its median
    note: str
    mount: float | None = None  # median time the fresh mounts took to go live (not in median)

    def as_json(self) -> dict[str, object]:
        return {
            "workload": self.workload,
            "layers": self.layers,
            "pass": self.pass_,
            "system": self.system,
            "runs": self.runs,
            "median": self.median,
            "min": self.min,
            "max": self.max,
            **{f"x_{k}": v for k, v in self.ratios.items()},
            "note": self.note,
        }


def _note(samples: Sequence[Sample]) -> str:
    parts: list[str] = []
    for s in samples:
        for text in (s.error, s.note):
            if text and text not in parts:
                parts.append(text)
    problems = sum(len(s.log_problems) for s in samples)
    if problems:
        parts.append(f"LOG: {problems} error lines")
    return "; ".join(parts)


def summarize(samples: Sequence[Sample], systems: Sequence[str]) -> list[Row]:
    groups: dict[tuple[str, int, str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.workload, s.layers, s.pass_, s.system), []).append(s)
    medians = {
        key: statistics.median(times)
        for key, group in groups.items()
        if (times := [s.seconds for s in group if s.seconds is not None])
    }
    order = {w.name: i for i, w in enumerate(WORKLOADS)}
    sys_order = {name: i for i, name in enumerate(systems)}
    rows = []
    for key in sorted(
        groups, key=lambda k: (order.get(k[0], 99), k[1], PASS_ORDER[k[2]], sys_order.get(k[3], 99))
    ):
        group = groups[key]
        times = [s.seconds for s in group if s.seconds is not None]
        med = medians.get(key)
        ratios: dict[str, float | None] = {}
        for base in BASELINES:
            other = medians.get((*key[:3], base))
            ratios[base] = med / other if med is not None and other else None
        mounts = [s.mount_seconds for s in group if s.mount_seconds is not None]
        rows.append(
            Row(
                *key,
                len(times),
                med,
                min(times, default=None),
                max(times, default=None),
                ratios,
                _note(group),
                statistics.median(mounts) if mounts else None,
            )
        )
    return rows


def _secs(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def detail_table(rows: Sequence[Row]) -> str:
    head = (
        "| workload | layers | pass | system | median s | min s | max s | x kernel "
        "| x fuse-overlayfs | runs | mount s | note |"
    )
    lines = [head, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r.workload} | {r.layers} | {r.pass_} | {r.system} | {_secs(r.median)} "
            f"| {_secs(r.min)} | {_secs(r.max)} | {_ratio(r.ratios['kernel'])} "
            f"| {_ratio(r.ratios['fuse-overlayfs'])} | {r.runs} | {_secs(r.mount)} "
            f"| {r.note.replace('|', '/')} |"
        )
    return "\n".join(lines)


def matrix_table(rows: Sequence[Row], systems: Sequence[str]) -> str:
    """One line per workload, layer count and pass: each system's median (x kernel)."""
    cells: dict[tuple[str, int, str], dict[str, str]] = {}
    for r in rows:
        text = _secs(r.median)
        if r.median is None:
            text = "n/a" if r.note.startswith("skipped") else "error"
        elif r.ratios["kernel"] is not None and r.system != "kernel":
            text += f" ({r.ratios['kernel']:.1f}x)"
        cells.setdefault((r.workload, r.layers, r.pass_), {})[r.system] = text
    lines = [
        "| workload | layers | pass | " + " | ".join(systems) + " |",
        "|---|---:|---|" + "---:|" * len(systems),
    ]
    for (wl, layers, pass_), by_system in cells.items():
        values = " | ".join(by_system.get(s, "") for s in systems)
        lines.append(f"| {wl} | {layers} | {pass_} | {values} |")
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=1, default=str) + "\n")
    tmp.rename(path)
