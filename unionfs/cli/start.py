"""``unionfs start [-a] C``: run a created or exited container again, attached.

Its saved spec (``unionfs create IMAGE CMD...`` or a ``run`` without ``--rm``) runs over
its existing upper, as ``run`` would run it: the exit code is the process's, the
container ends "exited" and stays (unless it was created with ``--rm``).
"""

from __future__ import annotations

import argparse

from unionfs.runtime import run as runtime
from unionfs.runtime.state import default_home


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "start",
        help="start a created or exited container (attached)",
        description="Run container C's command again over its upper layer (what it "
        "changed before is still there), in the foreground: its output is shown, signals "
        "are forwarded, and the exit code is the process's. A container that is running, "
        "or mounted with `unionfs mount`, is refused.",
    )
    p.add_argument("-a", "--attach", action="store_true",
                   help="accepted for docker compatibility: start always attaches")  # fmt: skip
    p.add_argument("container", metavar="C", help="name or id")


def run(args: argparse.Namespace) -> int:
    return runtime.start(default_home(), args.container)
