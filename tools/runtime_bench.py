"""Time ``podman run --rm IMAGE true`` through runc and through unionfs-runtime (issue 22's
numbers for the note), on the same storage, in the same run.

    sudo .venv/bin/python tools/runtime_bench.py [--runs 10] [--storage kernel|unionfs]

One root podman storage (tests/podman's set-up: cgroupfs, a cgroup parent below our own, a
busybox-static image; the kernel's overlay driver or unionfs as the mount program); the
rounds alternate the two runtimes, so that a change in the machine's load hits both. Also
times each OCI command alone (create, start, delete of a bundle that runs ``true``). Prints
medians; removes everything it made.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "podman")]

from podmanutil import CgroupParent, Podman, busybox_rootfs  # noqa: E402

IMAGE = "localhost/unionfs-runtime-bench"
OURS = str(Path(sys.executable).with_name("unionfs-runtime"))


def timed(argv: list[str], **kwargs: object) -> float:
    """Seconds *argv* took. No pipes: a created container holds its runtime's stdio."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start


def podman_rounds(pm: Podman, runtimes: dict[str, str], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    for program in runtimes.values():  # warm: the first run sets podman's state up
        pm.runtime = program
        pm.ok("run", "--rm", IMAGE, "true")
    for _round in range(runs):
        for name, program in runtimes.items():
            pm.runtime = program
            argv = pm.argv("run", *pm.container_flags(), "--rm", IMAGE, "true")
            times[name].append(timed(argv, env=pm.env(), cwd=pm.base))
    return times


def command_rounds(tmp: Path, rootfs: Path, runtimes: dict[str, str],
                   runs: int) -> dict[str, dict[str, list[float]]]:  # fmt: skip
    bundle = tmp / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["true"])
    config["root"]["path"] = str(rootfs)
    (bundle / "config.json").write_text(json.dumps(config))
    times: dict[str, dict[str, list[float]]] = {n: {"create": [], "start": [], "delete": []}
                                                for n in runtimes}  # fmt: skip
    for _round in range(runs):
        for name, program in runtimes.items():
            cid = f"bench-{uuid.uuid4().hex[:8]}"
            base = [program, "--root", str(tmp / f"state-{name}")]
            config["linux"]["cgroupsPath"] = f"unionfs-bench-{cid}"
            (bundle / "config.json").write_text(json.dumps(config))
            times[name]["create"].append(timed([*base, "create", "--bundle", str(bundle), cid]))
            try:
                times[name]["start"].append(timed([*base, "start", cid]))
            except BaseException:
                subprocess.run([*base, "delete", "--force", cid], check=False)
                raise
            for _ in range(200):  # `true` exits at once; delete wants it stopped
                state = json.loads(subprocess.run([*base, "state", cid], capture_output=True,
                                                  check=True).stdout)  # fmt: skip
                if state["status"] == "stopped":
                    break
                time.sleep(0.01)
            times[name]["delete"].append(timed([*base, "delete", "--force", cid]))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--storage", choices=("kernel", "unionfs"), default="kernel")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as name:
        tmp = Path(name)
        wrapper = tmp / "bin" / "unionfs-runtime"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\nexec {OURS} --root {tmp / "ours-state"} "$@"\n')
        wrapper.chmod(0o755)
        runtimes = {"runc": shutil.which("runc") or "runc", "unionfs-runtime": str(wrapper)}
        program = str(Path(sys.executable).with_name("unionfs")) if args.storage == "unionfs" \
            else None  # fmt: skip
        parent = CgroupParent("runtime-bench")
        pm = Podman(tmp / "podman", program, parent)
        problems: list[str] = []
        try:
            rootfs = busybox_rootfs(tmp / "rootfs")
            pm.import_rootfs(rootfs, IMAGE)
            run_true = podman_rounds(pm, runtimes, args.runs)
            plain = {"runc": runtimes["runc"], "unionfs-runtime": OURS}
            commands = command_rounds(tmp, rootfs, plain, args.runs)
        finally:
            problems = pm.teardown()
            parent.cleanup()
        print(f"podman run --rm {IMAGE} true, {args.storage} storage, median of {args.runs}:")
        for name, values in run_true.items():
            print(f"  {name:16} {statistics.median(values):.3f} s  "
                  f"(min {min(values):.3f}, max {max(values):.3f})")  # fmt: skip
        print("each OCI command alone, median (s):")
        for name, per in commands.items():
            cells = "  ".join(f"{cmd} {statistics.median(v):.3f}" for cmd, v in per.items())
            print(f"  {name:16} {cells}")
        if problems:
            print("left behind:", problems, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
