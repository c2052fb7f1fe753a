"""``unionfs start [-a] C...``: run created or exited containers again, detached as podman
does (``-a``: attached, in the foreground).

Its saved spec (``unionfs create IMAGE CMD...`` or a ``run`` without ``--rm``) runs over
its existing upper, as ``run`` would run it. Detached, the container's name is printed
once its process runs and its output goes to its log (``unionfs logs``); attached, the
exit code is the process's. Either way it ends "exited" and stays (unless made ``--rm``).
"""

from __future__ import annotations

import argparse
import functools

from unionfs.errors import UserError
from unionfs.runtime import detach
from unionfs.runtime import run as runtime
from unionfs.runtime.state import default_home


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "start",
        help="start created or exited containers (detached; -a attached)",
        description="Run container C's command again over its upper layer (what it "
        "changed before is still there): in the background, as podman does, printing C "
        "once it runs; with -a in the foreground: its output is shown, signals are "
        "forwarded, and the exit code is the process's. A container that is running, or "
        "mounted with `unionfs mount`, is refused.",
    )
    p.add_argument("-a", "--attach", action="store_true",
                   help="in the foreground, with its output and exit code")  # fmt: skip
    p.add_argument("-i", "--interactive", action="store_true",
                   help="accepted with -a (the container's saved -i decides)")  # fmt: skip
    p.add_argument("containers", nargs="+", metavar="C", help="name or id")


def run(args: argparse.Namespace) -> int:
    home = default_home()
    if args.attach:
        if len(args.containers) > 1:
            raise UserError("start -a: give one container", exit_code=2)
        return runtime.start(home, args.containers[0])
    for ref in args.containers:
        detach.launch(functools.partial(_start, home, ref))
        print(ref)
    return 0


def _start(home: str, ref: str, detached: detach.Detached) -> int:
    return runtime.start(home, ref, detached=detached)
