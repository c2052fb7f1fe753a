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
    deep_layers: tuple[int, ...]  # only for the deep workloads (stat-all, mount)
    passes: tuple[str, ...]
    timeout: float  # seconds for one timed command before it counts as a hang
    systems: tuple[str, ...]


QUICK = Preset(scale=0.1, runs=3, layers=(1, 10), deep_layers=(), passes=("hot", "warm"),
               timeout=300, systems=("unionfs", "kernel", "fuse-overlayfs"))
FULL = Preset(scale=1.0, runs=3, layers=(1, 10), deep_layers=(100, 500), passes=PASSES,
              timeout=900, systems=())  # fmt: skip
# The profile mode: request counts need one run, on FUSE systems, and no cache drops.
PROFILE = Preset(scale=0.1, runs=1, layers=(1,), deep_layers=(), passes=("hot", "warm"),
                 timeout=900, systems=("unionfs", "fuse-overlayfs"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Config:
    mode: str
    scale: float
    runs: int
    layers: tuple[int, ...]
    deep_layers: tuple[int, ...]
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
    big_mib: int = 1024
    profile: bool = False  # count FUSE requests per opcode (tracefs) and unionfs's handlers

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
        help="2,000 files, 1 GiB, 1 and 10 layers, hot/warm, median of 3, unionfs, kernel "
        "and fuse-overlayfs (the default; 10-25 minutes here)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="20,000 files, 1 GiB, 1 and 10 layers (stat and mount also 100 and 500), "
        "3 runs, cold/hot/warm, every system",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="count FUSE requests per opcode and their round trips (kernel tracepoints), and "
        "unionfs's time per handler; quick sizes, 1 run, unionfs and fuse-overlayfs",
    )
    p.add_argument(
        "--real",
        action="store_true",
        help="add the real workloads (apt-install, cp-rootfs, tar-c, c-build, git-status, "
        "git-gc); the first use downloads a Debian root once (mmdebstrap)",
    )
    p.add_argument("--scale", type=float, help="size factor: 1 = 20,000 files and 1 GiB")
    p.add_argument("--runs", type=int, help="runs per measurement (median, min, max)")
    p.add_argument("--layers", type=_csv, help="layer counts of the sweeps, e.g. 1,10")
    p.add_argument(
        "--deep-layers", type=_csv, help="extra layer counts for stat-all and mount, e.g. 100,500"
    )
    p.add_argument("--big-mib", type=int, help="size of the big file in MiB (default 1024)")
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
    mode = args.mode or ("profile" if args.profile else "quick")
    preset = {"full": FULL, "profile": PROFILE}.get(mode, QUICK)
    passes = args.passes or preset.passes
    bad = [p for p in passes if p not in PASSES]
    if bad:
        raise SystemExit(f"bench: unknown pass {bad[0]!r} (known: {', '.join(PASSES)})")
    if args.systems == ("all",) or (args.systems is None and not preset.systems):
        everything = args.systems is not None
        names = tuple(s.name for s in systems.SYSTEMS if s.default or everything)
    else:
        names = args.systems or preset.systems
    systems.by_name(list(names))
    wl_names = args.workloads or tuple(w.name for w in workloads.WORKLOADS if not w.real)
    if args.real:
        wl_names += tuple(w.name for w in workloads.WORKLOADS if w.real and w.name not in wl_names)
    workloads.by_name(list(wl_names))
    layers = _counts(args.layers, preset.layers, "--layers")
    deep = _counts(args.deep_layers, preset.deep_layers, "--deep-layers")
    if args.big_mib is not None and args.big_mib < 1:
        raise SystemExit("bench: --big-mib takes a positive number of MiB")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if any(v is not None for v in (args.scale, args.runs, args.layers, args.passes,
                                   args.deep_layers)):  # fmt: skip
        mode += " preset with overrides"
    return Config(
        mode=mode,
        scale=args.scale if args.scale is not None else preset.scale,
        runs=args.runs or preset.runs,
        layers=layers,
        deep_layers=deep,
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
        big_mib=args.big_mib or 1024,
        profile=args.profile,
    )


def _counts(given: tuple[str, ...] | None, default: tuple[int, ...], flag: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(x) for x in given) if given is not None else default
    except ValueError:
        raise SystemExit(f"bench: {flag} takes integers, e.g. 1,10") from None
    if any(n < 1 for n in counts):
        raise SystemExit("bench: a stack has at least one layer")
    return counts
