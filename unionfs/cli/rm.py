"""``unionfs rm [-f] C...``: remove containers' directories (upper layer included); each
C is printed once removed, as podman does.

An exited container is simply deleted. A running one needs ``-f``: its process is killed
and its own runtime cleans up. A dead one (its runtime was killed with SIGKILL and could
not clean up) is cleaned up here: its process killed, its root unmounted, its cgroups
(recorded in its state, made by its runtime) removed.
"""

from __future__ import annotations

import argparse

from unionfs.errors import UserError
from unionfs.runtime import detach, reclaim, rootfs
from unionfs.runtime.state import ContainerDirs, State, default_home, describe

RUNTIME_PATIENCE = 120.0  # seconds for a runtime to clean up after its process is killed


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rm", help="remove containers that have exited")
    p.add_argument("-f", "--force", action="store_true", help="kill a running one first")
    p.add_argument("containers", nargs="+", metavar="C")


def run(args: argparse.Namespace) -> int:
    store = ContainerDirs(default_home())
    for ref in args.containers:
        remove(store, store.find(ref), args.force)
        print(ref, flush=True)
    return 0


def remove(store: ContainerDirs, state: State, force: bool) -> None:
    """Remove one container (its runtime's clean-up done here if the runtime is dead)."""
    status = describe(state)
    if status == "starting":
        raise UserError(f"container {state.name} is starting: try again")
    if status in ("running", "stopping"):
        if not force:
            raise UserError(f"container {state.name} is running: stop it or use rm -f")
        reclaim.kill(state)
        if not detach.wait_for_runtime(state, RUNTIME_PATIENCE):
            raise UserError(f"container {state.name}: its runtime did not finish in "
                            f"{RUNTIME_PATIENCE:g}s (pid {state.runtime_pid})")  # fmt: skip
    elif status == "created":  # by `unionfs create`: perhaps mounted by `unionfs mount`
        rootfs.unmount(store.paths(state.id).rootfs)
    elif status.startswith("dead"):
        reclaim.clean_up(state, store.paths(state.id).rootfs)
    if store.load(state.id) is not None:
        store.delete(state.id)

