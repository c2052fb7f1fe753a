"""Count the FUSE requests a small workload costs with and without each patched pyfuse3 feature.

    .venv/bin/python tools/binding_requests.py

Mounts tests/binding/toyfs.py (a passthrough file system that counts its requests) once per
configuration and prints, per workload, the requests of the measured pass and its wall time.
A developer script: the numbers go into notes, never into an assertion.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "binding"), str(REPO / "tests")]

from toymount import Toy, toy_mount  # noqa: E402


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
    "1000 open+write+close": (writes, [(), ("noflush",), ("no_open",), ("writeback",)]),
    "1000 readlink": (readlinks, [(), ("cache_symlinks",)]),
}


def main() -> None:
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


if __name__ == "__main__":
    main()
