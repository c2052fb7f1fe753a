"""``unionfs wait C...``: until each container has exited; prints its exit code, as podman.

A running container is waited for through its runtime's pidfd; one that was created but
not started yet is looked at again every ``POLL`` seconds until something runs it.
"""

from __future__ import annotations

import argparse
import time

from unionfs.errors import UserError
from unionfs.runtime import detach
from unionfs.runtime.state import ContainerDirs, default_home, describe

POLL = 0.1  # seconds between looks at a container nothing runs yet (not a deadline)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("wait", help="wait for containers to exit; print their exit codes",
                       description=__doc__)  # fmt: skip
    p.add_argument("containers", nargs="+", metavar="C", help="name or id")


def run(args: argparse.Namespace) -> int:
    dirs = ContainerDirs(default_home())
    for ref in args.containers:
        state = dirs.find(ref)
        while True:
            status = describe(state)
            if status.startswith("dead"):
                raise UserError(f"container {state.name}: its runtime is gone; "
                                f"unionfs rm {state.name} cleans up")  # fmt: skip
            if state.status == "exited":
                break
            if status == "created":
                time.sleep(POLL)
            else:
                detach.wait_for_runtime(state)
            found = dirs.load(state.id)
            if found is None:
                raise UserError(f"container {state.name} was removed when it exited (--rm)")
            state = found
        print(state.exit_code)
    return 0
