"""``unionfs attach C``: a detached container's output as it comes, until it exits; the
exit code is the container's. As podman's ``--sig-proxy`` (the default), INT and TERM
are passed to the container's process. Its stdin is not attached: a detached container
reads /dev/null (``logs -f`` without the signals; ``start -a`` to run one attached).
"""

from __future__ import annotations

import argparse
import os
import signal
import types

from unionfs.cli import logs
from unionfs.errors import UserError
from unionfs.runtime.state import ContainerDirs, default_home, describe


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("attach", help="follow a detached container's output until it exits",
                       description=__doc__)  # fmt: skip
    p.add_argument("--no-stdin", action="store_true",
                   help="accepted for podman's sake: stdin is never attached")  # fmt: skip
    p.add_argument("--sig-proxy", default="true", choices=("true", "false"),
                   help="pass INT and TERM to the container (default true)")  # fmt: skip
    p.add_argument("container", metavar="C", help="name or id")


def run(args: argparse.Namespace) -> int:
    dirs = ContainerDirs(default_home())
    state = dirs.find(args.container)
    if describe(state) not in ("running", "starting"):
        raise UserError(f"container {state.name} is not running ({describe(state)}): "
                        f"unionfs start -a {state.name} runs it attached")  # fmt: skip
    pid = state.pid

    def proxy(signum: int, _frame: types.FrameType | None) -> None:
        if pid is not None:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    if args.sig_proxy == "true":
        signal.signal(signal.SIGINT, proxy)
        signal.signal(signal.SIGTERM, proxy)
    follower = logs.Follower(dirs.paths(state.id).log)
    try:
        for _ in follower.read():  # what was written before: logs shows it
            pass
        logs.follow(dirs, state.id, follower, logs.Printer(False))
    finally:
        follower.close()
    final = dirs.load(state.id)
    if final is None or final.exit_code is None:
        return 0  # removed (--rm) before its code could be read
    return final.exit_code
