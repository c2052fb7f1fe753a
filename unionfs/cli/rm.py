"""``unionfs rm [-f] C...``: remove containers' directories (upper layer included).

An exited container is simply deleted. A running one needs ``-f``: its process is killed
and its own runtime cleans up. A dead one (its runtime was killed with SIGKILL and could
not clean up) is cleaned up here: its process killed, its root unmounted, its cgroups
(recorded in its state, made by its runtime) removed.
"""

from __future__ import annotations

import argparse
import time

from unionfs.errors import UserError
from unionfs.runtime import reclaim, rootfs
from unionfs.runtime.state import ContainerDirs, default_home, describe


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rm", help="remove containers that have exited")
    p.add_argument("-f", "--force", action="store_true", help="kill a running one first")
    p.add_argument("containers", nargs="+", metavar="C")


def run(args: argparse.Namespace) -> int:
    dirs = ContainerDirs(default_home())
    for ref in args.containers:
        state = dirs.find(ref)
        status = describe(state)
        if status == "starting":
            raise UserError(f"container {state.name} is starting: try again")
        if status in ("running", "stopping"):
            if not args.force:
                raise UserError(f"container {state.name} is running: stop it or use rm -f")
            reclaim.kill(state)
            _wait_for_runtime(dirs, state.id)
        elif status == "created":  # by `unionfs create`: perhaps mounted by `unionfs mount`
            rootfs.unmount(dirs.paths(state.id).rootfs)
        elif status.startswith("dead"):
            reclaim.clean_up(state, dirs.paths(state.id).rootfs)
        if dirs.load(state.id) is not None:
            dirs.delete(state.id)
    return 0


def _wait_for_runtime(dirs: ContainerDirs, container_id: str, timeout: float = 10.0) -> None:
    """Until the container's runtime has cleaned up (and, for --rm, deleted it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = dirs.load(container_id)
        if state is None or state.status == "exited":
            return
        time.sleep(0.05)
    raise UserError(f"container {container_id[:12]}: its runtime did not finish in {timeout}s")
