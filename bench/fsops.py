"""Client operations no single native tool does in one process: many names of one file
(link, unlink) and a package manager's small-file write pattern. Run as a script by the
timed command (``python3 -I fsops.py OP ...``), the same client on every system; standard
library only, imports nothing from bench or unionfs.

``dpkg OUT N``: what ``dpkg --unpack`` does to the file system, N files per round, two rounds
(an install, then an upgrade of the same packages): per package of 50 files, each file is
written as ``NAME.dpkg-new`` (create exclusive, write ~2.5 KB, fchown, fchmod, close, utime);
on upgrade the old one is first kept as ``NAME.dpkg-tmp`` (a hard link); then every
``.dpkg-new`` is renamed over its name, the ``.dpkg-tmp`` links are removed, and the package's
``.list`` file and the status file are rewritten (new file, rename over). No fsync: as with
``dpkg --force-unsafe-io``, usual in image builds, so that the disk does not drown the file
system's own cost.
"""

from __future__ import annotations

import os
import random
import sys

PER_PACKAGE = 50


def link(target: str, n: int) -> None:
    d = os.path.dirname(target)
    for i in range(n):
        os.link(target, os.path.join(d, f"l{i:05d}"))


def unlink(d: str, n: int) -> None:
    for i in range(n):
        os.unlink(os.path.join(d, f"l{i:05d}"))


def _replace(path: str, data: bytes) -> None:
    tmp = path + "-new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def dpkg(out: str, n: int) -> None:
    rng = random.Random(20)
    pool = rng.randbytes(1 << 16)
    info = os.path.join(out, "var/lib/dpkg/info")
    os.makedirs(info, exist_ok=True)
    status_path = os.path.join(out, "var/lib/dpkg/status")
    status: dict[int, bytes] = {}
    packages = max(1, n // PER_PACKAGE)
    for round_ in range(2):
        for p in range(packages):
            base = os.path.join(out, f"usr/share/pkg{p % 20}/p{p}")
            os.makedirs(base, exist_ok=True)
            names = [os.path.join(base, f"file{i:03d}") for i in range(PER_PACKAGE)]
            kept = []
            for name in names:
                try:
                    os.lstat(name)
                except FileNotFoundError:
                    pass
                else:
                    os.link(name, name + ".dpkg-tmp")
                    kept.append(name + ".dpkg-tmp")
                size = min(len(pool), int(rng.lognormvariate(7.8, 1.0)))
                fd = os.open(name + ".dpkg-new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0)
                os.write(fd, pool[:size])
                os.fchown(fd, 0, 0)
                os.fchmod(fd, 0o644)
                os.close(fd)
                os.utime(name + ".dpkg-new", (1700000000 + round_, 1700000000 + round_))
            for name in names:
                os.rename(name + ".dpkg-new", name)
            for name in kept:
                os.unlink(name)
            _replace(os.path.join(info, f"p{p}.list"), "\n".join(names).encode())
            status[p] = f"Package: p{p}\nStatus: install ok\nVersion: {round_}\n\n".encode()
            _replace(status_path, b"".join(status.values()))


def main(argv: list[str]) -> int:
    op, *args = argv
    if op == "link":
        link(args[0], int(args[1]))
    elif op == "unlink":
        unlink(args[0], int(args[1]))
    elif op == "dpkg":
        dpkg(args[0], int(args[1]))
    else:
        print(f"fsops: unknown operation {op!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
