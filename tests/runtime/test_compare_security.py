"""The same probe in unionfs (defaults), runc (``runc spec``'s default bundle) and podman
(defaults), each on a terminal (a pty), on an image carrying ``b 7 N`` (a host loop device):
unionfs must be at least as strict as the strictest on every row, but for the capability
set, which stays docker's (the set images expect; runc's spec keeps three). Run with -s to
see the table (``-m slow``)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import ptyutil
from runtime.containerutil import Runtime

MASKABLE = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
            "/proc/timer_stats", "/sys/dev/block", "/sys/devices/virtual/powercap",
            "/sys/firmware", "/sys/fs/selinux"]  # fmt: skip
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", "/sys"]
PROBE = f"""
st() {{ grep "^$1:" /proc/self/status | cut -f2; }}
opt() {{ awk -v p="$1" '$5 == p {{ o = $6 }} END {{ print o }}' /proc/self/mountinfo; }}
echo "caps_eff=$(st CapEff)"; echo "caps_bnd=$(st CapBnd)"
echo "nnp=$(st NoNewPrivs)"; echo "seccomp=$(st Seccomp)"
e=$(head -c 1 /secretdev 2>&1 >/dev/null) && echo image_node=OPENED || echo "image_node=${{e##*: }}"
e=$(mknod /dev/shm/n b 7 0 2>&1) && echo mknod=MADE || echo "mknod=${{e##*: }}"
exposed=""; for p in {" ".join(MASKABLE)}; do
  [ -e "$p" ] && [ -z "$(opt "$p")" ] && exposed="$exposed $p"; done; echo "exposed=$exposed"
writable=""; for p in {" ".join(READONLY)}; do [ -e "$p" ] || continue
  case ",$(opt "$p")," in *,ro,*) ;; *) writable="$writable $p";; esac; done
echo "writable=$writable"
echo "cgroup=$(grep -m1 memory /proc/self/cgroup | cut -d: -f3)"
limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null)
echo "own_limit=$limit"
echo "propagation=$(awk '$5 == "/" {{ print ($7 == "-" ? "private" : $7) }}' /proc/self/mountinfo)"
ttys=""; for fd in 0 1 2; do [ -t $fd ] && ttys="$ttys $fd"; done; echo "tty_fds=$ttys"
/probe/tiocsti 2>&1 | tr '\\n' ' ' | sed 's/^/tiocsti=/'; echo
"""
LIMIT = 64 << 20


def parse(output: bytes) -> dict[str, str]:
    seen = {}
    for line in output.decode(errors="replace").replace("\r", "").splitlines():
        key, eq, value = line.partition("=")
        if eq and key.isidentifier():
            seen[key] = value.strip()
    return seen


@pytest.fixture
def loop_node(tmp_path: Path) -> Iterator[tuple[int, int]]:
    backing = tmp_path / "disk.img"
    backing.write_bytes(b"SECRET".ljust(1 << 20, b"\0"))
    path = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    try:
        rdev = os.stat(path).st_rdev
        yield os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "-d", path], check=True)


def _rootfs(busybox_rootfs: Path, where: Path, node: tuple[int, int]) -> Path:
    shutil.copytree(busybox_rootfs, where, symlinks=True)
    where.chmod(0o755)
    os.mknod(where / "secretdev", 0o666 | stat.S_IFBLK, os.makedev(*node))
    os.chmod(where / "secretdev", 0o666)
    (where / "probe").mkdir()
    return where


def _unionfs(runtime: Runtime, rootfs: Path, probes: Path, tmp_path: Path) -> dict[str, str]:
    tar = tmp_path / "image.tar"
    with tarfile.open(tar, "w") as t:
        t.add(rootfs, arcname=".")
    assert runtime("import", str(tar), "probe:1").returncode == 0
    argv = [sys.executable, "-m", "unionfs", "run", "--rm", "--memory", str(LIMIT), "-v",
            f"{probes}:/probe:ro", "probe:1", "sh", "-c", PROBE]  # fmt: skip
    return parse(ptyutil.run(argv, runtime.env).output)


def _runc(rootfs: Path, probes: Path, tmp_path: Path) -> dict[str, str]:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["sh", "-c", PROBE])
    config["root"]["path"] = str(rootfs)
    config["mounts"].append({"destination": "/probe", "type": "bind", "source": str(probes),
                             "options": ["rbind", "ro"]})  # fmt: skip
    config["linux"]["cgroupsPath"] = f"utest-runc-security-{uuid.uuid4().hex[:8]}"
    config["linux"]["resources"]["memory"] = {"limit": LIMIT}
    (bundle / "config.json").write_text(json.dumps(config))
    argv = ["runc", "run", "-b", str(bundle), f"security-{uuid.uuid4().hex[:8]}"]
    return parse(ptyutil.run(argv, os.environ).output)


def _podman(rootfs: Path, probes: Path, tmp_path: Path) -> dict[str, str]:
    from podman.podmanutil import CgroupParent, Podman  # tests/podman's root podman recipe

    parent = CgroupParent("podman-security")
    pm = Podman(tmp_path / "podman", None, parent)
    cache = Path("/var/lib/containers")
    cache_existed = cache.exists()
    try:
        pm.import_rootfs(rootfs, "localhost/probe")
        argv = pm.argv("run", *pm.container_flags(), "--rm", "--memory", str(LIMIT), "-v",
                       f"{probes}:/probe:ro", "localhost/probe", "sh", "-c", PROBE)  # fmt: skip
        return parse(ptyutil.run(argv, pm.env(), cwd=str(pm.base)).output)
    finally:
        problems = pm.teardown()
        if not cache_existed:
            shutil.rmtree(cache, ignore_errors=True)
        parent.cleanup()
        assert not problems and not parent.leftovers(), problems


def _caps(mask: str) -> int:
    return bin(int(mask or "0", 16)).count("1")


ROWS = (
    ("capabilities (effective / bounding)", lambda s: f"{_caps(s['caps_eff'])} / "
     f"{_caps(s['caps_bnd'])} ({s['caps_bnd']})"),
    ("no_new_privs", lambda s: s["nnp"]),
    ("seccomp mode", lambda s: s["seccomp"]),
    ("open the image's b 7 N", lambda s: s["image_node"]),
    ("mknod b 7 0 (in /dev/shm)", lambda s: s["mknod"]),
    ("maskable paths left open", lambda s: s["exposed"] or "none"),
    ("read-only paths left writable", lambda s: s["writable"] or "none"),
    ("own cgroup (/proc/self/cgroup)", lambda s: s["cgroup"]),
    ("own memory limit at /sys/fs/cgroup", lambda s: s["own_limit"] or "not visible"),
    ("propagation of /", lambda s: s["propagation"]),
    ("terminal fds (caller's is a tty)", lambda s: s["tty_fds"] or "none"),
    ("TIOCSTI", lambda s: s["tiocsti"]),
)  # fmt: skip


@pytest.mark.slow
def test_unionfs_is_as_strict_as_runc_and_podman(
    runtime: Runtime, busybox_rootfs: Path, probes: Path, tmp_path: Path,
    loop_node: tuple[int, int],
) -> None:  # fmt: skip
    for tool in ("runc", "podman"):
        assert shutil.which(tool), f"{tool} is missing: ./dev.sh setup installs it"
    rootfs = _rootfs(busybox_rootfs, tmp_path / "rootfs", loop_node)
    seen = {
        "unionfs": _unionfs(runtime, rootfs, probes, tmp_path),
        "runc": _runc(rootfs, probes, tmp_path),
        "podman": _podman(rootfs, probes, tmp_path),
    }
    table = ["| | unionfs | runc (runc spec) | podman |", "|---|---|---|---|"]
    for title, show in ROWS:
        table.append(f"| {title} | " + " | ".join(show(seen[k]) for k in seen) + " |")
    print("\n" + "\n".join(table))
    ours, others = seen["unionfs"], [seen["runc"], seen["podman"]]
    assert ours["nnp"] == "1" and ours["seccomp"] == "2"
    assert ours["image_node"] != "OPENED" and ours["mknod"] != "MADE"
    assert all(set(ours["exposed"].split()) <= set(o["exposed"].split()) for o in others)
    assert all(set(ours["writable"].split()) <= set(o["writable"].split()) for o in others)
    assert ours["cgroup"] == "/" and ours["own_limit"] == str(LIMIT)
    assert ours["propagation"] == "private"
    assert ours["tty_fds"] == "" and "INJECTED" not in ours["tiocsti"]
