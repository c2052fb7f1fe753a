"""Count the FUSE requests a small workload costs with and without each patched pyfuse3 feature,
and time 1 GiB sequential I/O through the toy with and without passthrough.

    .venv/bin/python tools/binding_requests.py [--counts] [--throughput]   (both by default)

Mounts tests/binding/toyfs317.py (a pass-through file system that counts its requests) once per
configuration and prints, per workload, the requests of the measured pass and its wall time.
``--throughput`` writes 1 GiB (1 MiB writes, then fsync) and reads it back on a fresh mount
(the backing file hot in the page cache), on the backing directory itself, on kernel
overlayfs over it and through the toy: stock, write-back cache, passthrough (needs root);
the best of two rounds each.
A developer script: the numbers go into notes, never into an assertion.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "binding"), str(REPO / "tests")]

from toymount import Toy, toy_mount  # noqa: E402

GIB = 1 << 30
CHUNK = 1 << 20
ROUNDS = 2  # the best of two: the machine is shared


def tree(backing: Path) -> None:
    for d in range(20):
        sub = backing / f"d{d}"
        sub.mkdir()
        for f in range(50):
            (sub / f"f{f}").write_bytes(b"x")


def find(mnt: Path) -> None:
    for _root, _dirs, _files in os.walk(mnt):
        pass


def writes(mnt: Path) -> None:
    for i in range(1000):
        fd = os.open(mnt / "w" / f"f{i % 100}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"y" * 100)
        os.close(fd)


def one_fd_writes(mnt: Path) -> None:
    fd = os.open(mnt / "w" / "one", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in range(1000):
            os.pwrite(fd, b"y" * 100, i * 100)
    finally:
        os.close(fd)


def readlinks(mnt: Path) -> None:
    for _ in range(1000):
        os.readlink(mnt / "link")


def setup(backing: Path) -> None:
    tree(backing)
    (backing / "w").mkdir()
    os.symlink("d0/f0", backing / "link")


def measure(toy: Toy, work: Callable[[Path], None]) -> tuple[dict[str, int], float]:
    work(toy.mnt)  # warm the kernel's caches
    before = toy.counts()
    start = time.perf_counter()
    work(toy.mnt)
    elapsed = time.perf_counter() - start
    after = toy.counts()
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }, elapsed


CONFIGS = {
    "warm find (20 dirs x 50 files)": (
        find,
        [
            (),
            ("cache_readdir",),
            ("cache_readdir", "explicit_inval_data"),
            ("no_opendir",),
            ("no_opendir", "explicit_inval_data"),
        ],
    ),
    "1000 open+write+close": (
        writes,
        [
            (),
            ("noflush",),
            ("no_open",),
            ("writeback",),
            ("killpriv_v2",),
            ("writeback", "killpriv_v2"),
            ("no_open", "killpriv_v2"),
        ],
    ),
    "1000 writes on one fd": (
        one_fd_writes,
        [(), ("killpriv_v2",), ("writeback",), ("writeback", "killpriv_v2")],
    ),
    "1000 readlink": (readlinks, [(), ("cache_symlinks",)]),
}


def counts() -> None:
    with tempfile.TemporaryDirectory(prefix="binding-requests-") as tmp:
        for title, (work, variants) in CONFIGS.items():
            print(f"## {title}")
            for features in variants:
                backing = Path(tempfile.mkdtemp(dir=tmp))
                mnt = Path(tempfile.mkdtemp(dir=tmp))
                setup(backing)
                with toy_mount(backing, mnt, features) as toy:
                    counts, elapsed = measure(toy, work)
                total = sum(counts.values())
                detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                label = "+".join(features) or "stock behaviour"
                print(f"- {label}: {total} requests, {elapsed:.3f} s ({detail})")


def sequential(mnt: Path) -> tuple[float, float]:
    """Seconds to write 1 GiB to mnt/big, and then to fsync it."""
    chunk = os.urandom(CHUNK)
    start = time.perf_counter()
    fd = os.open(mnt / "big", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(GIB // CHUNK):
            os.write(fd, chunk)
        wrote = time.perf_counter()
        os.fsync(fd)
    finally:
        os.close(fd)
    return wrote - start, time.perf_counter() - wrote


def read_all(path: Path) -> float:
    start = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, CHUNK):
            pass
    finally:
        os.close(fd)
    return time.perf_counter() - start


@contextmanager
def overlay(tmp: Path, upper: Path) -> Iterator[Path]:
    lower, work, mnt = (Path(tempfile.mkdtemp(dir=tmp)) for _ in range(3))
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def throughput() -> None:
    print("## 1 GiB sequential write (1 MiB writes; then fsync), read on a fresh mount (hot)")
    with tempfile.TemporaryDirectory(prefix="binding-throughput-") as name:
        tmp = Path(name)
        for label in ("backing dir", "kernel overlayfs", "toy", "toy writeback",
                      "toy passthrough"):  # fmt: skip
            backing = Path(tempfile.mkdtemp(dir=tmp))
            features = {"toy": (), "toy writeback": ("writeback",),
                        "toy passthrough": ("passthrough",)}.get(label)  # fmt: skip
            requests = ""
            if label == "backing dir":
                wrote, synced = min(sequential(backing) for _ in range(ROUNDS))
                read = min(read_all(backing / "big") for _ in range(ROUNDS))
            elif label == "kernel overlayfs":
                with overlay(tmp, backing) as mnt:
                    wrote, synced = min(sequential(mnt) for _ in range(ROUNDS))
                read = math.inf
                for _ in range(ROUNDS):
                    with overlay(tmp, backing) as mnt:
                        read = min(read, read_all(mnt / "big"))
            else:
                assert features is not None
                mnt = Path(tempfile.mkdtemp(dir=tmp))
                with toy_mount(backing, mnt, features) as toy:
                    wrote, synced = min(sequential(mnt) for _ in range(ROUNDS))
                    writes = toy.counts().get("write", 0) // ROUNDS
                read, reads = math.inf, 0
                for _ in range(ROUNDS):
                    with toy_mount(backing, mnt, features) as toy:
                        read = min(read, read_all(mnt / "big"))
                        reads = toy.counts().get("read", 0)
                requests = f"; requests per GiB: write {writes}, read {reads}"
            mib = GIB // CHUNK
            print(
                f"- {label}: write {mib / wrote:.0f} MiB/s ({wrote:.2f} s, fsync {synced:.2f} s), "
                f"read {mib / read:.0f} MiB/s ({read:.2f} s){requests}"
            )
            os.unlink(backing / "big")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", action="store_true", help="only the request counts")
    parser.add_argument("--throughput", action="store_true", help="only the 1 GiB timings")
    args = parser.parse_args()
    both = not (args.counts or args.throughput)
    if both or args.counts:
        counts()
    if both or args.throughput:
        throughput()


if __name__ == "__main__":
    main()
