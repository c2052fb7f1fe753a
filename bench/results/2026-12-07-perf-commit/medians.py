"""Medians of a commitbench.sh output file (python3 medians.py FILE): per column, per-run
ratios."""

import statistics
import sys

NAMES = ["commit podman", "commit unionfs", "load podman", "import unionfs", "mb",
         "commit before", "import before"]  # fmt: skip

with open(sys.argv[1], encoding="utf-8") as f:
    rows = [line for line in f if line[:1].isdigit()]
seen = {line.split()[0]: line for line in rows}  # last line of each run (the full one)
cols: dict[str, list[float]] = {}
for line in seen.values():
    parts = [p.split() for p in line.split("|")]
    cols.setdefault("load", []).append(float(parts[0][1]))
    for name, p in zip(NAMES, parts[1:], strict=False):
        if name == "mb":
            continue
        cols.setdefault(name, []).append(float(p[0]))
        cols.setdefault(name + " cpu", []).append(float(p[1]) + float(p[2]))
    cols.setdefault("ratio commit", []).append(float(parts[2][0]) / float(parts[1][0]))
    cols.setdefault("ratio import", []).append(float(parts[4][0]) / float(parts[3][0]))
    if len(parts) > 6:
        cols.setdefault("ratio commit before", []).append(float(parts[6][0]) / float(parts[1][0]))
        cols.setdefault("ratio import before", []).append(float(parts[7][0]) / float(parts[3][0]))
print("| column (s, wall or cpu user+sys) | median | min | max | runs |")
print("|---|---:|---:|---:|---:|")
for k, v in cols.items():
    print(f"| {k} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} | {len(v)} |")
