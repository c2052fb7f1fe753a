"""Time podman with each overlay mount program (issue 11's numbers for the note).

    sudo .venv/bin/python tools/podman_bench.py [--runs 5] [--files 10000] [--rootless] [--zygote]

For unionfs, fuse-overlayfs and the kernel driver, each on a private storage root: the
median wall time of ``podman run --rm IMAGE true``, and of ``podman diff`` on a container
that created FILES files (and changed one); the programs take turns in each round. Uses the
podman set-up of tests/podman (runc, cgroupfs, a cgroup parent below our own,
busybox-static image) and removes everything it made. ``--rootless``: as a fresh user
instead (the set-up of tests/rootless: its own storage.conf, XDG_RUNTIME_DIR, a private
mount namespace with a 0666 /dev/fuse; unionfs run through a wrapper script), removed again
afterwards. unionfs runs with UNIONFS_ZYGOTE=0 (the zygote is its default); ``--zygote``
(as root): unionfs once more with UNIONFS_ZYGOTE=1 in podman's environment (a resident
pre-imported process forks each mount; stopped at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "podman")]

from podmanutil import CgroupParent, Podman, busybox_rootfs  # noqa: E402

IMAGE = "localhost/unionfs-bench-busybox"


def timed(pm: Any, *args: str) -> float:
    start = time.perf_counter()
    pm.ok(*args)
    return time.perf_counter() - start


def bench(pms: dict[str, Any], runs: int, files: int) -> dict[str, tuple[float, float, int]]:
    """Rounds interleave the programs, so that a change in the machine's load hits all."""
    make = f"mkdir /many && cd /many && seq {files} | xargs touch && echo changed >> /data/keep"
    changes = {}
    for name, pm in pms.items():
        pm.ok("run", "--rm", IMAGE, "true")  # warm: the first run sets up podman's state
        pm.ok("run", "--name", "big", IMAGE, "sh", "-c", make)
        changes[name] = len(pm.ok("diff", "big").splitlines())
    run_true: dict[str, list[float]] = {name: [] for name in pms}
    diff: dict[str, list[float]] = {name: [] for name in pms}
    for _round in range(runs):
        for name, pm in pms.items():
            run_true[name].append(timed(pm, "run", "--rm", IMAGE, "true"))
            diff[name].append(timed(pm, "diff", "big"))
    return {
        name: (statistics.median(run_true[name]), statistics.median(diff[name]), changes[name])
        for name in pms
    }


def report(results: dict[str, tuple[float, float, int]]) -> None:
    print(f"{'mount program':<16} {'run --rm true':>14} {'diff':>10} {'changes':>8}")
    for name, (run_true, diff, changes) in results.items():
        print(f"{name:<16} {run_true:>13.2f}s {diff:>9.2f}s {changes:>8}")


def bench_root(runs: int, files: int, zygote: bool = False) -> None:
    unionfs = str(Path(sys.executable).with_name("unionfs"))
    os.environ["UNIONFS_ZYGOTE"] = "0"  # podman's: the ordinary start, but for +zygote
    programs = {"unionfs": unionfs, "fuse-overlayfs": "/usr/bin/fuse-overlayfs", "kernel": None}
    if zygote:
        programs = {"unionfs+zygote": unionfs, **programs}
    cgroups = CgroupParent("podman-bench")
    pms: dict[str, Podman] = {}
    system_cache = Path("/var/lib/containers")  # root podman's blob cache, whatever --root
    cache_existed = system_cache.exists()
    with tempfile.TemporaryDirectory(prefix="podman-bench-") as tmp:
        rootfs = busybox_rootfs(Path(tmp) / "rootfs")
        try:
            for name, program in programs.items():
                pms[name] = Podman(Path(tmp) / name, program, cgroups)
                if name.endswith("+zygote"):
                    plain = pms[name].env
                    key, _, value = MARK.partition("=")
                    pms[name].env = lambda plain=plain, key=key, value=value: {**plain(),
                        "UNIONFS_ZYGOTE": "1", "UNIONFS_ZYGOTE_IDLE": "120", key: value}
                pms[name].import_rootfs(rootfs, IMAGE)
            report(bench(pms, runs, files))
        finally:
            if zygote:
                stop_zygote()
            for name, pm in pms.items():
                if problems := pm.teardown():
                    print(f"{name}: {problems}", file=sys.stderr)
            cgroups.cleanup()
            if not cache_existed:
                shutil.rmtree(system_cache, ignore_errors=True)


MARK = f"UNIONFS_BENCH_ZYGOTE={os.getpid()}"  # in the environment of the zygotes we start


def stop_zygote() -> None:
    """The zygotes the unionfs+zygote runs started (by pid: those with our mark)."""
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"unionfs.zygote.server" not in f.read().split(b"\0"):
                    continue  # a mount's worker shows its caller's environment, mark too
            with open(f"/proc/{pid}/environ", "rb") as f:
                if MARK.encode() in f.read().split(b"\0"):
                    os.kill(int(pid), 15)


@contextlib.contextmanager
def rootless_user() -> Iterator[Any]:
    """tests/rootless/rootlessutil.py's fresh user (loaded by path: tests/ has its own conftest)."""
    spec = importlib.util.spec_from_file_location(
        "rootless_conftest", HERE.parent / "tests" / "rootless" / "rootlessutil.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    with module.fresh_user() as user:
        yield user


def bench_rootless(runs: int, files: int) -> None:
    sys.path.insert(0, str(HERE.parent / "tests" / "rootless"))
    from podman_user import RootlessPodman, unionfs_wrapper

    with rootless_user() as user:
        tmp = Path(tempfile.mkdtemp(prefix="podman-bench-", dir=user.base))
        tmp.chmod(0o755)
        log = tmp / "calls.log"
        log.touch()
        log.chmod(0o666)
        unionfs = str(unionfs_wrapper(user, tmp / "unionfs-mount-program", log))
        programs = {"unionfs": unionfs, "fuse-overlayfs": "/usr/bin/fuse-overlayfs",
                    "kernel": None}  # fmt: skip
        rootfs = busybox_rootfs(tmp / "rootfs")
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                             check=True).stdout  # fmt: skip
        pms: dict[str, Any] = {}
        try:
            for name, program in programs.items():
                pms[name] = RootlessPodman(user, tmp / name, program)
                pms[name].import_rootfs(tar, IMAGE)
            report(bench(pms, runs, files))
        finally:
            for name, pm in pms.items():
                if problems := pm.teardown():
                    print(f"{name}: {problems}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rootless", action="store_true", help="as a fresh unprivileged user")
    parser.add_argument("--zygote", action="store_true", help="also unionfs with its zygote")
    args = parser.parse_args()
    if args.rootless:
        bench_rootless(args.runs, args.files)
    else:
        bench_root(args.runs, args.files, args.zygote)
    return 0


if __name__ == "__main__":
    sys.exit(main())
