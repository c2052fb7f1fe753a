"""``unionfs commit C NEWIMAGE[:TAG] [-m MSG]``: the container's changes become a new layer
on top of its image's, recorded as a new image (works while the container is mounted)."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("commit", help="make a new image from a container's changes")
    p.add_argument("container", metavar="C")
    p.add_argument("image", metavar="NEWIMAGE[:TAG]")
    p.add_argument("-m", "--message", metavar="MSG", help="the commit message (history comment)")
    p.add_argument("-q", "--quiet", action="store_true", help="accepted: commit prints only the id")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        image = lifecycle.commit(store, args.container, args.image, args.message)
    print(image.record.config)
    return 0
