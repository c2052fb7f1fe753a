"""``unionfs create IMAGE [--name C]``: a container (an empty upper over the image's
layers), not started; ``unionfs mount C`` mounts it. Prints the container's id."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store
from unionfs.store import containers


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("create", help="create a container on an image (not started)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--name", help="a unique name for the container")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        state = containers.create(store, args.image, args.name)
    print(state.id)
    return 0
