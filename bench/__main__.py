"""``python -m bench``: generate (or reuse) the stacks, check every system shows the same tree,
measure, then print the tables and write results.json (and PNGs with --plot).

Needs root: kernel overlay mounts, whiteout device nodes, drop_caches. Everything it mounts
lives in one scratch directory, unmounted and removed at the end; only the stack cache stays.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from bench import config, machine, profilereport, realstacks, report, systems, workloads
from bench.fusetrace import Tracer
from bench.runner import Runner, say_stderr
from bench.stacks import StackCache
from bench.timing import Sample

DROP_NOTE = (
    "note: cold passes run `sync; echo 3 > /proc/sys/vm/drop_caches` before each "
    "fresh mount: this drops the page cache of the WHOLE machine, not only ours"
)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cleanup(scratch: Path) -> None:
    for point in reversed(systems.mounts_under(scratch)):
        for cmd in (["fusermount3", "-uz"], ["umount", "-l"]):
            subprocess.run([*cmd, point], capture_output=True, check=False)
    systems.remove_place(scratch)


def main(argv: list[str] | None = None) -> int:
    cfg = config.parse(argv)
    if os.geteuid() != 0:
        print(
            "bench: needs root (kernel overlay mounts, whiteout device nodes, drop_caches)",
            file=sys.stderr,
        )
        return 2
    chosen_systems = systems.by_name(list(cfg.systems))
    chosen_wls = workloads.by_name(list(cfg.workloads))
    signal.signal(signal.SIGTERM, _on_sigterm)

    systems.compile_sources()
    info = machine.describe()
    versions = {s.name: machine.version(s) for s in chosen_systems}
    versions["fusermount3"] = machine.fusermount_version()
    repo = config.BENCH_DIR.parent
    versions["unionfs-source"] = source_at_start = machine.source_state(repo)
    cache = StackCache(cfg.cache, cfg.scale, cfg.seed, cfg.big_mib)
    say_stderr(
        f"bench: {cfg.mode} mode, scale {cfg.scale:g} ({cache.sizes}), "
        f"{cfg.runs} run(s), passes {','.join(cfg.passes)}, layers "
        f"{','.join(map(str, cfg.layers + cfg.deep_layers))}; load average {info['loadavg_start']}"
    )
    if "cold" in cfg.passes:
        say_stderr(DROP_NOTE)

    cfg.scratch_base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=cfg.scratch_base))
    started = time.monotonic()
    checks: list[dict[str, object]] = []
    try:
        runner = Runner(cfg, cache, scratch, say_stderr)
        t0 = time.monotonic()
        stacks = runner.prepare(chosen_wls, chosen_systems)
        say_stderr(
            f"bench: {len(stacks)} stacks ready in {time.monotonic() - t0:.1f} s "
            f"(cache {cfg.cache})"
        )
        if cfg.prepare:
            return 0
        if cfg.check:
            checks = runner.check(chosen_wls, chosen_systems)
        with ExitStack() as tracing:
            if cfg.profile:
                runner.tracer = tracing.enter_context(Tracer(scratch / "trace"))
            samples = runner.run(chosen_wls, chosen_systems)
    except KeyboardInterrupt:
        say_stderr("bench: interrupted; unmounting and cleaning up")
        return 130
    finally:
        _cleanup(scratch)

    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    source_at_end = machine.source_state(repo)
    # Only the code under test counts: a commit of other files (bench/) moves HEAD alone.
    if source_at_end.rsplit("tree ", 1)[-1] != source_at_start.rsplit("tree ", 1)[-1]:
        versions["unionfs-source"] += f"; CHANGED during the run, at the end: {source_at_end}"
        say_stderr("bench: the unionfs source changed during the run: see the Versions line")
    info["bench_seconds"] = round(time.monotonic() - started, 1)
    names = [s.name for s in chosen_systems]
    rows = report.summarize(samples, names)
    text = _render(cfg, info, versions, cache, checks, rows, names)
    if cfg.profile:
        text += "\n\n" + _render_profile(samples, names)
    if runner.aborted:
        text += f"\n\n**The run stopped early:** {runner.aborted}"
    print(text)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "table.md").write_text(text + "\n")
    report.write_json(
        cfg.out / "results.json",
        {
            "config": cfg.as_json(),
            "machine": info,
            "versions": versions,
            "sizes": asdict(cache.sizes),
            "stacks": {
                k: {
                    "layers": s.depth,
                    "files": s.files,
                    "dirs": s.dirs,
                    "whiteouts": s.whiteouts,
                    "path": str(s.root),
                }
                for k, s in stacks.items()
            },
            "workloads": {
                w.name: {"title": w.title, "command": w.command, "setup": w.setup}
                for w in chosen_wls
            },
            "notes": [DROP_NOTE] if "cold" in cfg.passes else [],
            "checks": checks,
            "samples": [s.as_json() for s in samples],
            "summary": [r.as_json() for r in rows],
        },
    )
    if cfg.plot:
        try:
            from bench.plots import write_plots
        except ImportError:
            say_stderr("bench: --plot needs matplotlib: .venv/bin/pip install matplotlib")
        else:
            for path in write_plots(rows, names, cfg.out):
                say_stderr(f"bench: wrote {path}")
    say_stderr(f"bench: wrote {cfg.out / 'results.json'} and {cfg.out / 'table.md'}")
    _warn_unionfs(samples)
    if runner.aborted:
        say_stderr(f"bench: the run stopped early: {runner.aborted}")
        return 1
    return 0


def _render(
    cfg: config.Config,
    info: dict[str, object],
    versions: dict[str, str],
    cache: StackCache,
    checks: list[dict[str, object]],
    rows: list[report.Row],
    names: list[str],
) -> str:
    sizes = cache.sizes
    lines = [
        f"# unionfs bench, {cfg.mode} mode, {info['date']}",
        "",
        f"Machine: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, {info['os']}; load average {info['loadavg_start']} at start, "
        f"{info['loadavg_end']} at end.",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()) + ".",
        f"Stacks: scale {cfg.scale:g}: {sizes.files} small files in {sizes.dirs} dirs "
        f"(+2 x {sizes.rename_files} in renameme*/), big file {sizes.big_mib} MiB, "
        f"create/delete {sizes.create_files} files; seed {cfg.seed}. "
        f"Runs: {cfg.runs}; passes: {', '.join(cfg.passes)}.",
        "Seconds; median of the runs, min and max; 'x kernel' = median / kernel overlayfs "
        "median for the same workload, layers and pass.",
    ]
    if "cold" in cfg.passes:
        lines.append(DROP_NOTE + ".")
    bad = [c for c in checks if not c.get("ok")]
    if bad:
        lines.append(
            "Merged-view check FAILED for: "
            + "; ".join(
                f"{c['system']} on {c['stack']} (expected {c['expected']}, saw "
                f"{c.get('seen')}{', ' + str(c['error']) if c.get('error') else ''})"
                for c in bad
            )
        )
    elif checks:
        lines.append(
            f"Merged-view check: all {len(checks)} system x stack mounts showed the "
            "expected files and directories."
        )
    lines += [
        "",
        "## Summary: median seconds (x kernel overlayfs)",
        "",
        report.matrix_table(rows, names),
        "",
        "## Detail",
        "",
        report.detail_table(rows),
        "",
        "## Workloads",
        "",
    ]
    ctx = {"mnt": "MNT", "tar": "SRC.tar", "src": "SRC", "n": str(sizes.create_files),
           "links": str(sizes.links), "mib": str(sizes.big_mib),
           "fsops": "python3 bench/fsops.py", "chroot": "chroot MNT (unshare, /proc, /dev)",
           "apt": realstacks.APT_INSTALL, "rootfs": "ROOTFS"}  # fmt: skip
    for w in workloads.by_name(list(cfg.workloads)):
        cmd = (
            "(time from starting the daemon until the mount is live)"
            if w.mount_only
            else (f"`{w.command.format(**ctx)}`")
        )
        setup = f" after `{w.setup.format(**ctx)}`" if w.setup else ""
        lines.append(f"- {w.name}: {w.title.format(**ctx)}: {cmd}{setup}")
    return "\n".join(lines)


def _render_profile(samples: list[Sample], names: list[str]) -> str:
    return "\n".join([
        "## Profile: FUSE requests per workload",
        "",
        "Counted by the kernel (tracepoints fuse_request_send/_end on the mount's connection), "
        "so the same for every FUSE system. Seconds are the pass's wall time while traced "
        "(the tracing costs a little). Round trip = from the kernel sending a request until "
        "the daemon's answer arrived; unionfs's handler time is measured inside the daemon "
        "(UNIONFS_PROFILE): the rest of a round trip is libfuse, pyfuse3, trio and scheduling.",
        "",
        profilereport.requests_table(samples, names),
        "",
        "## Profile: per opcode (count, mean µs)",
        "",
        profilereport.opcode_tables(samples, names),
    ])  # fmt: skip


def _warn_unionfs(samples: list[Sample]) -> None:
    for s in samples:
        if (
            s.system.startswith("unionfs")
            and s.system != "unionfs-fuse"
            and (s.log_problems or (s.error and not s.error.startswith("skipped")))
        ):
            say_stderr(
                f"bench: unionfs problem in {s.workload} layers={s.layers} {s.pass_}: "
                f"{s.error or ''} {s.log_problems[:3]}"
            )


if __name__ == "__main__":
    sys.exit(main())
