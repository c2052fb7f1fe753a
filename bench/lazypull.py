"""Lazy pulling against a full pull (issue 23): time to a command's first output and bytes
fetched, over a slow link. Opt-in, as root: ``.venv/bin/python -m bench.lazypull``.

A network namespace of our own (``lazy-mount-bench-<pid>``) holds everything: Debian's
``docker-registry`` on its loopback, reached through a shaping proxy (default 100 Mbit/s
and 10 ms each way: 20 ms round trips), and the unionfs commands. The proxy shapes, not
``tc``: this kernel has no ``sch_netem`` ("Specified qdisc kind is unknown"), and ``tbf``
alone gives a rate but no delay. The image is built from this machine's own files (its
/usr/bin, gcc's and python3.11's trees and the libraries they load: ~600 MB), imported
once and pushed as gzip, eStargz and zstd:chunked straight to the registry. Each
measurement starts from an empty store: ``unionfs run --pull missing`` (a full pull, then
run) and ``--pull lazy``; podman pull + run of the gzip image with ``--podman``. Bytes
fetched are the registry's blob answers (its access log) up to the command's first
output. Prefetch is off for lazy runs (``UNIONFS_LAZY_PREFETCH=0``): the bytes are what
the command needed. The namespace, the registry and the stores are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.slowlink import Registry, ShapingProxy, netns

REPO = Path(__file__).resolve().parent.parent
UNIONFS = [sys.executable, "-m", "unionfs"]
PROFILE_ENV = "UNIONFS_PROFILE"  # fuse.edge: per-handler counts, READ bytes among them
COMMANDS = {
    "python3 -c 'print(1)'": ["/usr/bin/python3", "-c", "print(1)"],
    "gcc --version": ["/usr/bin/gcc", "--version"],
    "sh -c 'echo ok'": ["/bin/sh", "-c", "echo ok"],
}
TREES = ["usr/bin", "usr/sbin", "usr/lib/gcc", "usr/lib/python3.11", "usr/libexec"]
ELF_SEEDS = ["usr/bin/python3.11", "usr/bin/gcc-12", "usr/bin/dash", "usr/bin/bash",
             "usr/lib/gcc/x86_64-linux-gnu/12/cc1", "usr/bin/x86_64-linux-gnu-as"]  # fmt: skip
FORMATS = {"gzip": "gzip", "estargz": "esgz", "zstd:chunked": "zc"}


def sh(*cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


def build_rootfs(dest: Path) -> Path:
    """The image's tree from this machine's files (kept in *dest* between runs)."""
    if (dest / ".done").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "usr/lib64").mkdir(parents=True)
    for name, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                         ("lib64", "usr/lib64")):  # fmt: skip
        os.symlink(target, dest / name)  # merged /usr, as Debian 12's
    for tree in TREES:
        if os.path.isdir(f"/{tree}"):
            (dest / tree).parent.mkdir(parents=True, exist_ok=True)
            sh("cp", "-a", f"/{tree}", str(dest / tree))
    libs: set[str] = set()
    for seed in ELF_SEEDS:
        out = subprocess.run(["ldd", f"/{seed}"], capture_output=True, text=True).stdout
        libs.update(m for m in re.findall(r"(/\S+\.so[.\d]*)", out))
    for lib in sorted(libs):
        for path in {lib, os.path.realpath(lib)}:
            inside = re.sub(r"^/(lib|lib64|bin|sbin)/", r"/usr/\1/", path)
            target = dest / inside.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(target):
                sh("cp", "-a", path, str(target))
    for d in ("etc", "tmp", "root", "proc", "sys", "dev"):
        (dest / d).mkdir(exist_ok=True)
    (dest / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc/group").write_text("root:x:0:\n")
    (dest / ".done").write_text("")
    return dest


def uf(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([*UNIONFS, "--root", str(root), *args], capture_output=True,
                          text=True, env=env, cwd=REPO)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"bench: unionfs {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def first_output(cmd: list[str], env: dict[str, str], reg: Registry) -> dict[str, object]:
    """Run *cmd*; seconds to its first byte of stdout, and blob bytes fetched until then."""
    mark = reg.mark()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=REPO)  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    ttfo = time.monotonic() - start
    fetched, requests = reg.blob_bytes(mark)
    rest = proc.stdout.read()
    err = proc.stderr.read() if proc.stderr else b""
    proc.wait()
    ok = proc.returncode == 0 and bool(first)
    return {"seconds": round(ttfo, 2), "bytes": fetched, "requests": requests, "ok": ok,
            "output": (first + rest).decode(errors="replace").strip()[:40],
            "stderr": err.decode(errors="replace")[-2000:],
            "error": "" if ok else err.decode(errors="replace").strip()[-300:]}  # fmt: skip


def read_bytes(profile: Path) -> int:
    """Bytes the mount's READ answers carried (``UNIONFS_PROFILE``: written at unmount,
    which ``run --rm`` waits for): what the command and the kernel's read-ahead read."""
    for _ in range(600):
        if profile.exists():
            return int(json.loads(profile.read_text()).get("read", {}).get("bytes", 0))
        time.sleep(0.1)
    return -1


CGROUP_NAME = "lazy-bench-podman"


def cgroup_parent() -> str:
    """podman's --cgroup-parent: below the cgroup this process is in, in every hierarchy
    (cgroup v1 here: one path deeper than ours wherever ours is set; others are at /)."""
    paths = {line.split(":", 2)[2].strip() for line in Path("/proc/self/cgroup").read_text()
             .splitlines() if line.count(":") >= 2}  # fmt: skip
    deepest = max(paths, key=len)
    if not all(deepest.startswith(p.rstrip("/") + "/") or p == deepest for p in paths):
        raise SystemExit(f"bench: our cgroups {sorted(paths)} have no common deepest path")
    return f"{deepest.rstrip('/')}/{CGROUP_NAME}"


def remove_cgroups() -> None:
    """What podman made below ``cgroup_parent`` (``rmdir``, deepest first)."""
    parent = cgroup_parent()
    for hier in Path("/sys/fs/cgroup").iterdir():
        top = hier / parent.lstrip("/")
        if top.is_dir():
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(str(p))):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def measure(work: Path, reg: Registry, ref: str, mode: str, argv: list[str]) -> dict[str, object]:
    store = work / "stores" / "s"
    shutil.rmtree(store, ignore_errors=True)
    env = dict(os.environ, UNIONFS_HOME=str(store), UNIONFS_LAZY_PREFETCH="0")
    try:
        if mode == "podman":
            cmd = ["podman", "--root", str(store / "podman"), "--runroot", str(store / "run"),
                   "--storage-driver", "overlay", "--runtime", "runc", "--cgroup-manager",
                   "cgroupfs", "--events-backend", "none", "run", "--rm", "--tls-verify=false",
                   "--cgroup-parent", cgroup_parent(), "--network=none", "--ulimit",
                   "nofile=1024:1024", "--ulimit", "nproc=1024:1024", ref, *argv]  # fmt: skip
            return first_output(cmd, env, reg)
        pull = "lazy" if mode != "gzip" else "missing"
        cmd = [*UNIONFS, "--root", str(store), "run", "--rm", "--pull", pull,
               "--tls-verify=false", ref, *argv]  # fmt: skip
        env[PROFILE_ENV] = str(work / "profile.json")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(env[PROFILE_ENV])
        found = first_output(cmd, env, reg)
        found["read"] = read_bytes(Path(env[PROFILE_ENV]))
        said = str(found.pop("stderr", ""))
        toc = re.search(r"TOCs (\d+) bytes", said)
        found["toc_bytes"] = int(toc[1]) if toc else 0
        trees = re.search(r"placeholder trees ([0-9.]+) s", said)
        found["trees"] = float(trees[1]) if trees else None
        return found
    finally:
        remove_cgroups()
        with contextlib.suppress(Exception):
            subprocess.run(["podman", "--root", str(store / "podman"), "--runroot",
                            str(store / "run"), "system", "reset", "-f"],
                           capture_output=True, timeout=120)  # fmt: skip
        shutil.rmtree(store, ignore_errors=True)


def phases(work: Path, reg: Registry, ref: str, mode: str, argv: list[str]) -> dict[str, object]:
    """Where the time of one row goes: ``pull [--lazy]`` alone (for a lazy pull, the
    placeholder trees' share as it reports it), then ``run`` of the pulled image to its
    first output twice: the first run fetches what the command reads, the second finds
    everything here (the container set-up and the mount, with no network)."""
    store = work / "stores" / "p"
    shutil.rmtree(store, ignore_errors=True)
    env = dict(os.environ, UNIONFS_HOME=str(store), UNIONFS_LAZY_PREFETCH="0")
    try:
        start = time.monotonic()
        out = uf(store, "pull", *(["--lazy"] if mode != "gzip" else []), "--tls-verify=false",
                 ref, "img", env=env)  # fmt: skip
        pulled = time.monotonic() - start
        tree = re.search(r"placeholder trees ([0-9.]+) s", out)
        run = [*UNIONFS, "--root", str(store), "run", "--rm", "img", *argv]
        first = first_output(run, env, reg)
        again = first_output(run, env, reg)
        return {"mode": mode, "pull": round(pulled, 2),
                "trees": float(tree[1]) if tree else None, "run": first["seconds"],
                "run_again": again["seconds"], "ok": bool(first["ok"] and again["ok"])}  # fmt: skip
    finally:
        shutil.rmtree(store, ignore_errors=True)


def inner(args: argparse.Namespace) -> None:
    work = Path(args.work)
    sh("ip", "link", "set", "lo", "up")
    reg = Registry(work)
    try:
        src = work / "src-store"
        shutil.rmtree(src, ignore_errors=True)
        uf(src, "import", str(build_rootfs(work / "rootfs")), "big:1")
        refs = {}
        for fmt, tag in FORMATS.items():
            refs[fmt] = f"{reg.host}/bench/big:{tag}"
            uf(src, "push", "big:1", refs[fmt], "--compression-format", fmt, "--tls-verify=false")
        sizes = {fmt: _image_bytes(reg, ref) for fmt, ref in refs.items()}
        shutil.rmtree(src, ignore_errors=True)
        proxy = ShapingProxy(reg.port, args.rate_mbit * 1e6 / 8, args.delay_ms / 1000)
        refs = {fmt: ref.replace(reg.host, f"127.0.0.1:{proxy.port}") for fmt, ref in refs.items()}
        rows = []
        modes = ["gzip", "estargz", "zstd:chunked"] + (["podman"] if args.podman else [])
        for name, argv in COMMANDS.items():
            for mode in modes:
                ref = refs["gzip" if mode == "podman" else mode]
                result = measure(work, reg, ref, mode, argv)
                rows.append({"command": name, "mode": mode, **result})
                print(json.dumps(rows[-1]), flush=True)
        split = []
        name = "sh -c 'echo ok'"
        for mode in ["gzip", "estargz", "zstd:chunked"]:
            split.append({"command": name, **phases(work, reg, refs[mode], mode, COMMANDS[name])})
            print(json.dumps(split[-1]), flush=True)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        found = {"sizes": sizes, "rows": rows, "phases": split, "rate_mbit": args.rate_mbit,
                 "delay_ms": args.delay_ms, "uptime": sh("uptime").stdout.strip()}  # fmt: skip
        (out / "results.json").write_text(json.dumps(found, indent=1))
        (out / "table.md").write_text(table(rows, sizes, args) + phase_table(split))
    finally:
        reg.stop()


def _image_bytes(reg: Registry, ref: str) -> int:
    """The sum of the layer blobs' sizes of *ref* (its manifest's)."""
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    req = urllib.request.Request(f"http://{reg.host}/v2/{repo}/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    with urllib.request.urlopen(req) as resp:
        manifest = json.load(resp)
    return sum(int(layer["size"]) for layer in manifest["layers"])


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:100].replace("|", "/")


def table(rows: list[dict[str, object]], sizes: dict[str, int], args: argparse.Namespace,
          load: float | None = None) -> str:  # fmt: skip
    load = os.getloadavg()[0] if load is None else load
    lines = [f"# Lazy pulling (issue 23): {args.rate_mbit} Mbit/s, {args.delay_ms} ms each way "
             f"(a shaping proxy in the namespace); load average {load:.1f}", "",
             "Image layer blobs: " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items()),
             "", "| command | mode | first output (s) | ratio to full | MB fetched before it | "
             "blob requests | MB read (FUSE READ) | fetched / (2 x read + TOCs) | ok |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    full = {str(r["command"]): float(str(r["seconds"])) for r in rows if r["mode"] == "gzip"}
    for r in rows:
        base = full.get(str(r["command"]))
        ratio = float(str(r["seconds"])) / base if base else 0.0
        read = int(str(r.get("read", -1)))
        bound = 2 * read + int(str(r.get("toc_bytes", 0)))
        lazy = r["mode"] in ("estargz", "zstd:chunked") and read >= 0
        fetched = int(str(r["bytes"]))
        shown_read = f"{read / 1e6:.1f}" if read >= 0 else "-"
        shown_bound = f"{fetched / bound:.2f}" if lazy and bound else "-"
        lines.append(f"| `{r['command']}` | {r['mode']} | {r['seconds']} | {ratio:.2f} | "
                     f"{fetched / 1e6:.1f} | {r['requests']} | {shown_read} | {shown_bound} | "
                     f"{'yes' if r['ok'] else 'NO: ' + _last_line(str(r['error']))} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def phase_table(split: list[dict[str, object]]) -> str:
    lines = ["", "Where the time goes (`sh -c 'echo ok'`; each step timed alone, prefetch off):",
             "", "| mode | pull (s) | of it: placeholder trees (s) | run, first (s) | "
             "run again, all here (s) | ok |", "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for p in split:
        trees = "-" if p["trees"] is None else p["trees"]
        lines.append(f"| {p['mode']} | {p['pull']} | {trees} | {p['run']} | {p['run_again']} | "
                     f"{'yes' if p['ok'] else 'NO'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.lazypull", description=__doc__)
    p.add_argument("--work", default="/var/tmp/unionfs-bench/lazypull",
                   help="the image tree (kept), the registry and stores (removed)")  # fmt: skip
    p.add_argument("--out", default=str(REPO / "bench/out/lazypull"))
    p.add_argument("--rate-mbit", type=int, default=100)
    p.add_argument("--delay-ms", type=int, default=10)
    p.add_argument("--podman", action="store_true", help="also podman pull + run (gzip)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inner:
        inner(args)
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    with netns(f"lazy-mount-bench-{os.getpid()}") as ns:
        # nsenter --net, not ip netns exec: that one remounts /sys, and the cgroup
        # hierarchies `run` needs would be gone.
        cmd = ["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-m", "bench.lazypull",
               "--inner",
               "--work", args.work, "--out", os.path.abspath(args.out),
               "--rate-mbit", str(args.rate_mbit), "--delay-ms", str(args.delay_ms),
               *(["--podman"] if args.podman else [])]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=REPO)
    for d in ("storage", "stores"):
        shutil.rmtree(Path(args.work) / d, ignore_errors=True)
    (Path(args.work) / "profile.json").unlink(missing_ok=True)
    print((Path(args.out) / "table.md").read_text())


if __name__ == "__main__":
    main()
