"""``unionfs diff C``: what changed in a container, one ``A``/``C``/``D`` line per path."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diff", help="list the paths a container added, changed or deleted")
    p.add_argument("container", metavar="C")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        for kind, path in lifecycle.diff(store, args.container):
            print(f"{kind} {path}")
    return 0
