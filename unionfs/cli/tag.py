"""``unionfs tag IMAGE NAME[:TAG]``: another name for an image."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tag", help="give an image another name")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("names", nargs="+", metavar="NAME[:TAG]")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        for name in args.names:
            store.tag(args.image, name)
    return 0
