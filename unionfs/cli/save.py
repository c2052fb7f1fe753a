"""``unionfs save IMAGE -o FILE`` (an OCI archive) or ``--layout DIR`` (an OCI image layout)."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store
from unionfs.errors import UserError
from unionfs.store import exporter


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("save", help="write an image as an OCI archive or layout")
    p.add_argument("image", metavar="IMAGE")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="FILE", help="an OCI archive (a tar)")
    where.add_argument("--layout", metavar="DIR", help="an OCI image layout directory")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    if args.output is None and args.layout is None:
        raise UserError("give -o FILE (an OCI archive) or --layout DIR")
    with open_store(args) as store:
        if args.layout is not None:
            exporter.save_layout(store, args.image, args.layout)
        else:
            exporter.save_archive(store, args.image, args.output)
    return 0
