"""``unionfs logs [-f] [--tail N] [-t] C``: what a detached container wrote (its
``ctrlog`` files), stdout to stdout and stderr to stderr, as podman shows it.

``-f`` follows the log until the container's runtime has finished (a rotated file is
read to its end before the new one); ``--tail N`` shows only the last N lines.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator

from unionfs.errors import UserError
from unionfs.runtime import ctrlog
from unionfs.runtime.state import ContainerDirs, default_home, describe

POLL = 0.1  # seconds between looks at a followed log (not a deadline)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logs", help="show a detached container's output",
                       description=__doc__)  # fmt: skip
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing what comes until the container exits")  # fmt: skip
    p.add_argument("--tail", type=int, default=-1, metavar="N",
                   help="only the last N lines (-1: all)")  # fmt: skip
    p.add_argument("-t", "--timestamps", action="store_true", help="each line with its time")
    p.add_argument("container", metavar="C", help="name or id")


class Printer:
    """Entries to the caller's stdout/stderr; a timestamp at each line's start with -t."""

    def __init__(self, timestamps: bool) -> None:
        self.timestamps = timestamps
        self.at_start = {"stdout": True, "stderr": True}

    def show(self, entry: ctrlog.Entry) -> None:
        out = sys.stdout.buffer if entry.stream == "stdout" else sys.stderr.buffer
        if self.timestamps and self.at_start[entry.stream]:
            out.write(entry.time.encode() + b" ")
        out.write(entry.text)
        out.flush()
        self.at_start[entry.stream] = entry.text.endswith(b"\n")


def _tail(found: list[ctrlog.Entry], lines: int) -> list[ctrlog.Entry]:
    """The entries of the last *lines* lines (a line: P entries up to an F one)."""
    if lines < 0:
        return found
    ends = [i for i, e in enumerate(found) if e.text.endswith(b"\n")]
    if lines == 0:
        return found[ends[-1] + 1 :] if ends else found
    if len(ends) <= lines:
        return found
    return found[ends[-lines - 1] + 1 :]


class Follower:
    """Reads ctr.log through one descriptor, across rotations."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.rest = b""
        self._open()

    def _open(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> Iterator[ctrlog.Entry]:
        while True:
            if self.fd is None:
                self._open()
                if self.fd is None:
                    return
            while chunk := os.read(self.fd, 1 << 16):
                self.rest += chunk
            *lines, self.rest = self.rest.split(b"\n")
            for line in lines:
                entry = ctrlog.parse(line + b"\n")
                if entry is not None:
                    yield entry
            try:
                rotated = os.stat(self.path).st_ino != os.fstat(self.fd).st_ino
            except FileNotFoundError:
                rotated = False  # the container was removed (--rm): nothing more comes
            if not rotated:
                return
            os.close(self.fd)
            self.fd, self.rest = None, b""

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def run(args: argparse.Namespace) -> int:
    dirs = ContainerDirs(default_home())
    state = dirs.find(args.container)
    path = dirs.paths(state.id).log
    if args.tail < -1:
        raise UserError(f"--tail {args.tail}: give a number of lines, or -1 for all", 2)
    printer = Printer(args.timestamps)
    follower = Follower(path)  # first: a rotation now leaves nothing out
    try:
        older = []
        with contextlib.suppress(FileNotFoundError), open(path + ".1", "rb") as f:
            older = [e for e in map(ctrlog.parse, f) if e is not None]
        if follower.fd is not None and older:
            # ctr.log.1 may be the file we hold, rotated since: read it only once
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path + ".1").st_ino == os.fstat(follower.fd).st_ino:
                    older = []
        for entry in _tail([*older, *follower.read()], args.tail):
            printer.show(entry)
        if args.follow:
            follow(dirs, state.id, follower, printer)
    finally:
        follower.close()
    return 0


def follow(dirs: ContainerDirs, container_id: str, follower: Follower,
           printer: Printer) -> None:  # fmt: skip
    """Print what comes until the container's runtime has finished (``attach`` too)."""
    while True:
        now = dirs.load(container_id)
        live = now is not None and describe(now) in ("starting", "running", "stopping")
        for entry in follower.read():
            printer.show(entry)
        if not live:
            return
        time.sleep(POLL)
