"""``unionfs container prune [-f]``: remove every container that is not running (created,
exited, or left by a runtime that died), as ``podman container prune``; prints their ids."""

from __future__ import annotations

import argparse

from unionfs.cli import containerinfo, rm
from unionfs.cli.confirm import confirm
from unionfs.runtime.state import ContainerDirs, default_home

WARNING = "WARNING! This will remove all non running containers."


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("container-prune", help="remove all containers that are not running",
                       description=__doc__)  # fmt: skip
    p.add_argument("-f", "--force", action="store_true", help="do not ask first")


def prune(store: ContainerDirs) -> list[str]:
    """Remove the containers that are not running; their ids."""
    gone = []
    for state in store.all():
        if containerinfo.state_word(state) in ("created", "exited", "unknown"):
            rm.remove(store, state, force=False)
            gone.append(state.id)
    return gone


def run(args: argparse.Namespace) -> int:
    if not args.force and not confirm(WARNING):
        return 0
    for container_id in prune(ContainerDirs(default_home())):
        print(container_id)
    return 0
