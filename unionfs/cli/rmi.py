"""``unionfs rmi IMAGE...``: untag; remove an image with its last name, keeping every layer
and blob another image or a container uses."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rmi", help="remove images")
    p.add_argument("-f", "--force", action="store_true", help="remove every name of the image")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        for ref in args.images:
            for line in store.remove(ref, args.force, lambda: lifecycle.uses(store)):
                print(line)
    return 0
