"""Reproduce issue 19.9: link(2) through a 4,095-byte path fails with ENOENT while the
kernel's caches are dropped.

    .venv/bin/python tools/longpath_race.py [--seconds 100] [--threads 2] [--drop 2] [--kernel]

As root. Mounts a one-layer stack (unionfs, or kernel overlayfs with ``--kernel``) and runs,
for ``--seconds``: ``--threads`` workers each doing what pjdfstest's chown/03.t, link/03.t
and symlink/03.t do, from a directory of the lower layer (``mkdir`` of a chain of 127-byte
names up to 4,095 bytes, create, chown, stat, link both ways, unlink, symlink both ways,
``rm -rf``, all relative to a directory descriptor); one thread writing
``--drop`` to /proc/sys/vm/drop_caches every 50 ms (2: dentries and inodes, so the kernel
sends FORGETs); one thread doing other work on the same mount (create, list, walk, remove).
Prints every failed step with the link counts the kernel shows just after it.

What it showed (Linux 6.18, unionfs at io-races): one failure in a few runs of 100 s on a
busy machine (more often with a second mount doing I/O), always the same one: after
``link(nx, n0)`` both names show nlink 2, after ``unlink(nx)`` the kernel shows nlink 0 for
``n0``, and the next ``link(n0, nx)`` fails with ENOENT: the VFS refuses to link an inode
whose cached i_nlink is 0 (``vfs_link``). Kernel overlayfs shows none. The cause (issue
19.9): the kernel drops the count itself after our answer to the unlink, and the listing of
``low`` by the other thread, answered in between, had already given it the count after the
unlink (1): counted twice. Fixed by listings giving only names for inodes the kernel holds
(``fuse/reading.py``); ``tests/mounted/test_unlink_listing_race.py`` shows it without load.
Drops every cache of the machine: run it where that does no harm. A developer script;
never part of the test suite.
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from mountutil import tree  # noqa: E402
from writeutil import writable  # noqa: E402

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
PATH_MAX = 4096


def name(rng: random.Random, length: int = 127) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(length))


def long_path(rng: random.Random) -> str:
    """pjdfstest's dirgen_max: components of NAME_MAX/2 bytes, PATH_MAX - 1 bytes in all."""
    path = ""
    while len(path) < PATH_MAX:
        path += name(rng) + "/"
    return path[: PATH_MAX - 1]


class Run:
    def __init__(self, mnt: Path, seconds: float, drop: str) -> None:
        self.mnt = mnt
        self.drop = drop
        self.errors: list[tuple[object, ...]] = []
        self.stop = threading.Event()
        self.seconds = seconds

    def dropper(self) -> None:
        while not self.stop.is_set():
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write(self.drop)
            time.sleep(0.05)

    def other_work(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                d = self.mnt / "other"
                p = d / f"w{i % 20}"
                p.write_bytes(b"z")
                os.listdir(d)
                os.listdir(self.mnt / "low")
                for _ in os.walk(d):
                    pass
                p.unlink()
            except OSError as exc:
                self.errors.append(("other work", repr(exc)))

    def nlinks(self, fd: int, *names: str) -> tuple[object, ...]:
        found: list[object] = []
        for n in names:
            try:
                found.append(os.stat(n, dir_fd=fd, follow_symlinks=False).st_nlink)
            except OSError as exc:
                found.append(errno.errorcode.get(exc.errno or 0))
        return tuple(found)

    def worker(self, tid: int) -> None:
        rng = random.Random(tid)
        fd = os.open(self.mnt / "low", os.O_RDONLY | os.O_DIRECTORY)
        try:
            while not self.stop.is_set():
                self.round(fd, rng, tid)
        finally:
            os.close(fd)

    def round(self, fd: int, rng: random.Random, tid: int) -> None:
        nx = long_path(rng)
        n0 = f"t{tid}_" + name(rng, 10)
        parts = nx.split("/")[:-1]

        def step(what: str, call: object) -> None:
            assert callable(call)
            try:
                call()
            except OSError as exc:
                code = errno.errorcode.get(exc.errno or 0)
                self.errors.append((what, code, "nlink n0, nx:", self.nlinks(fd, n0, nx)))

        for k in range(1, len(parts) + 1):
            step("mkdir", lambda k=k: os.mkdir("/".join(parts[:k]), 0o755, dir_fd=fd))
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
        step("create", lambda: os.close(os.open(nx, flags, 0o644, dir_fd=fd)))
        step("chown", lambda: os.chown(nx, 65534, 65534, dir_fd=fd, follow_symlinks=False))
        step("link nx n0", lambda: os.link(nx, n0, src_dir_fd=fd, dst_dir_fd=fd))
        step("unlink nx", lambda: os.unlink(nx, dir_fd=fd))
        step("link n0 nx", lambda: os.link(n0, nx, src_dir_fd=fd, dst_dir_fd=fd))
        step("unlink n0", lambda: os.unlink(n0, dir_fd=fd))
        step("unlink nx", lambda: os.unlink(nx, dir_fd=fd))
        step("symlink nx", lambda: os.symlink(nx, n0, dir_fd=fd))
        step("unlink n0", lambda: os.unlink(n0, dir_fd=fd))
        step("symlink n0", lambda: os.symlink(n0, nx, dir_fd=fd))
        step("unlink nx", lambda: os.unlink(nx, dir_fd=fd))
        for k in range(len(parts), 0, -1):
            step("rmdir", lambda k=k: os.rmdir("/".join(parts[:k]), dir_fd=fd))

    def run(self, threads: int) -> None:
        workers = [threading.Thread(target=self.dropper), threading.Thread(target=self.other_work)]
        workers += [threading.Thread(target=self.worker, args=(t,)) for t in range(threads)]
        for t in workers:
            t.start()
        time.sleep(self.seconds)
        self.stop.set()
        for t in workers:
            t.join()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=100.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--drop", choices=("1", "2", "3"), default="2")
    p.add_argument("--kernel", action="store_true", help="kernel overlayfs instead")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("longpath_race: needs root (it writes /proc/sys/vm/drop_caches)", file=sys.stderr)
        return 2
    layers = [tree({"low": {f"f{i}": b"x" for i in range(50)},
                    "other": {f"g{i}": b"y" for i in range(50)}})]  # fmt: skip
    base = Path(tempfile.mkdtemp(prefix="longpath-race-"))
    with writable(base, layers, kernel=args.kernel) as m:
        run = Run(m.mnt, args.seconds, args.drop)
        run.run(args.threads)
    print(f"{'kernel overlayfs' if args.kernel else 'unionfs'}: {len(run.errors)} failed steps")
    for error in run.errors[:20]:
        print(" ", *error)
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
