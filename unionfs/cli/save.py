"""``unionfs save IMAGE [-o FILE|-]`` (an OCI archive; stdout when it is not a terminal) or
``--layout DIR`` (an OCI image layout). Where the archive goes: ``outfile``."""

from __future__ import annotations

import argparse

from unionfs.cli.outfile import output
from unionfs.cli.storecli import add_root, open_store
from unionfs.store import exporter


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("save", help="write an image as an OCI archive or layout")
    p.add_argument("image", metavar="IMAGE")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="FILE",
                       help="an OCI archive (a tar); - or none: stdout")  # fmt: skip
    where.add_argument("--layout", metavar="DIR", help="an OCI image layout directory")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.layout is not None:
            exporter.save_layout(store, args.image, args.layout)
            return 0
        store.resolve(args.image)  # a bad name fails before anything is written
        with output(args.output, "an image archive") as out:
            exporter.write_archive(store, args.image, out)
    return 0
