"""What one benchmark run does: the quick and full presets and the command line on top.

Pure: parses arguments into a frozen ``Config``; touches nothing on disk.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import systems, workloads

PASSES = ("cold", "hot", "warm")
DEFAULT_BASE = Path("/var/tmp/unionfs-bench")
BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Preset:
    scale: float
    runs: int
    layers: tuple[int, ...]
    passes: tuple[str, ...]
    timeout: float  # seconds for one timed command before it counts as a hang


QUICK = Preset(scale=0.1, runs=1, layers=(1, 10, 50), passes=("hot", "warm"), timeout=120)
FULL = Preset(scale=1.0, runs=3, layers=(1, 10, 50, 100, 500), passes=PASSES, timeout=900)


@dataclass(frozen=True, slots=True)
class Config:
    mode: str
    scale: float
    runs: int
    layers: tuple[int, ...]
    passes: tuple[str, ...]
    systems: tuple[str, ...]
    workloads: tuple[str, ...]
    seed: int
    timeout: float
    out: Path
    cache: Path
    scratch_base: Path
    plot: bool
    check: bool
    prepare: bool

    @property
    def first_passes(self) -> tuple[str, ...]:
        """The passes that start on a fresh mount: cold and/or hot."""
        return tuple(p for p in ("cold", "hot") if p in self.passes) or ("hot",)

    def as_json(self) -> dict[str, object]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time unionfs against kernel overlayfs, fuse-overlayfs and unionfs-fuse "
        "on the same generated layer stacks; print a markdown table of medians and ratios.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="small stacks, 1 run, hot/warm only (the default; a few minutes)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="20,000 files, 1 GiB, 1-500 layers, 3 runs, cold/hot/warm",
    )
    p.add_argument("--scale", type=float, help="size factor: 1 = 20,000 files and 1 GiB")
    p.add_argument("--runs", type=int, help="runs per measurement (median, min, max)")
    p.add_argument("--layers", type=_csv, help="layer counts for stat-all and mount, e.g. 1,10")
    p.add_argument(
        "--passes",
        type=_csv,
        help="any of cold,hot,warm (cold drops the page cache of the whole machine)",
    )
    p.add_argument(
        "--systems",
        type=_csv,
        help=f"comma list or 'all' (known: {', '.join(s.name for s in systems.SYSTEMS)})",
    )
    p.add_argument(
        "--workloads",
        type=_csv,
        help=f"comma list (known: {', '.join(w.name for w in workloads.WORKLOADS)})",
    )
    p.add_argument("--seed", type=int, default=1, help="stack generator seed (default 1)")
    p.add_argument("--timeout", type=float, help="seconds before a timed command is a hang")
    p.add_argument("--out", type=Path, help="output dir (default bench/out/<timestamp>/)")
    p.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_BASE / "cache",
        help="where generated stacks are kept between runs (default %(default)s)",
    )
    p.add_argument(
        "--scratch",
        type=Path,
        default=DEFAULT_BASE,
        help="parent of this run's scratch dir, removed at the end (default %(default)s)",
    )
    p.add_argument("--plot", action="store_true", help="write PNG plots (needs matplotlib)")
    p.add_argument(
        "--prepare", action="store_true", help="only generate the stacks this run would use"
    )
    p.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip checking that every system shows the expected merged tree",
    )
    return p


def parse(argv: list[str] | None = None) -> Config:
    args = build_parser().parse_args(argv)
    mode = args.mode or "quick"
    preset = FULL if mode == "full" else QUICK
    passes = args.passes or preset.passes
    bad = [p for p in passes if p not in PASSES]
    if bad:
        raise SystemExit(f"bench: unknown pass {bad[0]!r} (known: {', '.join(PASSES)})")
    if args.systems in (None, ("all",)):
        everything = args.systems is not None
        names = tuple(s.name for s in systems.SYSTEMS if s.default or everything)
    else:
        names = args.systems
    systems.by_name(list(names))
    wl_names = args.workloads or tuple(w.name for w in workloads.WORKLOADS)
    workloads.by_name(list(wl_names))
    try:
        layers = tuple(int(x) for x in (args.layers or preset.layers))
    except ValueError:
        raise SystemExit("bench: --layers takes integers, e.g. 1,10,50") from None
    if any(n < 1 for n in layers):
        raise SystemExit("bench: a stack has at least one layer")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if any(v is not None for v in (args.scale, args.runs, args.layers, args.passes)):
        mode += " preset with overrides"
    return Config(
        mode=mode,
        scale=args.scale if args.scale is not None else preset.scale,
        runs=args.runs or preset.runs,
        layers=layers,
        passes=tuple(p for p in PASSES if p in passes),
        systems=names,
        workloads=wl_names,
        seed=args.seed,
        timeout=args.timeout or preset.timeout,
        out=args.out or BENCH_DIR / "out" / stamp,
        cache=args.cache,
        scratch_base=args.scratch,
        plot=args.plot,
        check=args.check,
        prepare=args.prepare,
    )
