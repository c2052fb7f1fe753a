"""``unionfs rmi IMAGE...``: untag; remove an image with its last name, keeping every layer
and blob another image or a container uses; then the lazy chunks no lazy layer wants."""

from __future__ import annotations

import argparse
import os

from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle
from unionfs.lazy import prune as lazyprune
from unionfs.store import rmi


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rmi", help="remove images")
    p.add_argument("-f", "--force", action="store_true", help="remove every name of the image")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        for ref in args.images:
            for line in rmi.remove_image(store, ref, args.force, lambda: lifecycle.uses(store)):
                print(line)
        lazyprune.prune_chunks(os.path.join(store.root, "lazy"))
    return 0
