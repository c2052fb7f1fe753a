"""Medians of a commitbench.sh output file (python3 medians.py FILE): per column and per-run ratios."""
import sys, statistics as st
rows = [l for l in open(sys.argv[1]) if l[:1].isdigit()]
seen = {}
for l in rows:
    seen[l.split()[0]] = l  # last line of each run (the full one)
cols = {}
for l in seen.values():
    parts = [p.split() for p in l.split("|")]
    cols.setdefault("load", []).append(float(parts[0][1]))
    names = ["commit podman", "commit unionfs", "load podman", "import unionfs", "mb", "commit before", "import before"]
    for name, p in zip(names, parts[1:]):
        if name == "mb": continue
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
    print(f"| {k} | {st.median(v):.2f} | {min(v):.2f} | {max(v):.2f} | {len(v)} |")
