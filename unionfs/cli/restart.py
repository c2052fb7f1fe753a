"""``unionfs restart [-t N] C...``: stop each container if it runs (as ``stop``), then
start it detached (as ``start``); prints each C."""

from __future__ import annotations

import argparse
import functools

from unionfs.cli.stop import add_timeout, stop
from unionfs.runtime import detach
from unionfs.runtime import run as runtime
from unionfs.runtime.state import ContainerDirs, default_home


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("restart", help="stop, then start containers (detached)",
                       description=__doc__)  # fmt: skip
    add_timeout(p)
    p.add_argument("containers", nargs="+", metavar="C", help="name or id")


def run(args: argparse.Namespace) -> int:
    home = default_home()
    dirs = ContainerDirs(home)
    for ref in args.containers:
        stop(dirs, dirs.find(ref), args.time)
        detach.launch(functools.partial(_start, home, ref))
        print(ref)
    return 0


def _start(home: str, ref: str, detached: detach.Detached) -> int:
    return runtime.start(home, ref, detached=detached)
