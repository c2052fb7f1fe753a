"""PNG plots of a summary: one bar chart per workload, unionfs's ratios, and time against
layer count for the workloads measured at several depths (stat-all, mount). Needs
matplotlib (see README). ``python -m bench.plots DIR`` redraws them from DIR/results.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.report import Row


def write_plots(rows: Sequence[Row], systems: Sequence[str], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for wl in dict.fromkeys(r.workload for r in rows):
        mine = [r for r in rows if r.workload == wl]
        groups = list(dict.fromkeys((r.layers, r.pass_) for r in mine))
        width = 0.8 / max(1, len(systems))
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2), 4))
        for i, system in enumerate(systems):
            heights, low, high = [], [], []
            for g in groups:
                r = next((r for r in mine if (r.layers, r.pass_) == g and r.system == system), None)
                med = r.median if r is not None and r.median is not None else 0.0
                heights.append(med)
                low.append(med - r.min if r is not None and r.min is not None else 0.0)
                high.append(r.max - med if r is not None and r.max is not None else 0.0)
            xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(groups))]
            ax.bar(xs, heights, width, yerr=[low, high], capsize=2, label=system)
        ax.set_xticks(range(len(groups)), [f"{n} layer{'s' * (n > 1)}\n{p}" for n, p in groups])
        ax.set_ylabel("seconds (median; bars: min-max)")
        ax.set_title(wl)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"bar-{wl}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    ratios = _ratio_plot(plt, rows, out)
    if ratios is not None:
        written.append(ratios)

    for wl in ("stat-all", "mount"):
        mine = [r for r in rows if r.workload == wl and r.median is not None]
        if len({r.layers for r in mine}) < 2:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for color, system in enumerate(systems):
            for pass_ in ("cold", "hot", "warm"):
                pts = sorted(
                    (r.layers, float(r.median or 0.0))
                    for r in mine
                    if r.system == system and r.pass_ == pass_
                )
                if pts:
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        marker="o",
                        color=f"C{color}",
                        linestyle={"cold": "-", "hot": "--", "warm": ":"}[pass_],
                        label=f"{system} {pass_}",
                    )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("layers")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"{wl} against layer count")
        ax.legend(fontsize="x-small", ncol=2)
        fig.tight_layout()
        path = out / f"{wl}-vs-layers.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _ratio_plot(plt: object, rows: Sequence[Row], out: Path) -> Path | None:
    """unionfs's median over fuse-overlayfs's and over the kernel's, one bar pair per
    workload, layer count and pass (log scale: 1 = a tie)."""
    mine = [r for r in rows if r.system == "unionfs" and r.median is not None]
    if not mine:
        return None
    labels = [f"{r.workload} {r.layers}L {r.pass_}" for r in mine]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(mine) + 1.5))  # type: ignore[attr-defined]
    ys = range(len(mine))
    for i, (base, color) in enumerate((("fuse-overlayfs", "C1"), ("kernel", "C0"))):
        vals = [r.ratios.get(base) or 0.0 for r in mine]
        ax.barh([y + (i - 0.5) * 0.4 for y in ys], vals, 0.4, color=color,
                label=f"unionfs / {base}")  # fmt: skip
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.1, 0.3, 1, 2, 5, 10, 30, 100, 300]))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%gx"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(list(ys), labels, fontsize="x-small")
    ax.invert_yaxis()
    ax.set_xlabel("ratio of medians (below 1: unionfs faster)")
    ax.set_title("unionfs against fuse-overlayfs and kernel overlayfs")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = out / "ratios.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)  # type: ignore[attr-defined]
    return path


def replot(out: Path) -> list[Path]:
    """Redraw the plots of a finished run from its results.json."""
    import json

    from bench.report import summarize
    from bench.timing import Sample

    doc = json.loads((out / "results.json").read_text())
    samples = []
    for raw in doc["samples"]:
        fields = dict(raw)
        fields["pass_"] = fields.pop("pass")
        samples.append(Sample(**fields))
    names = list(doc["config"]["systems"])
    return write_plots(summarize(samples, names), names, out)


if __name__ == "__main__":
    import sys

    for written in replot(Path(sys.argv[1])):
        print(written)
