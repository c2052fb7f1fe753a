"""``unionfs import-layer FILE``: a layer tarball (gzip, zstd or plain tar) into the store;
prints its diff_id and blob digest."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store
from unionfs.store import importer


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("import-layer", help="add a layer tarball to the store")
    p.add_argument("file", metavar="FILE")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rec = importer.import_layer(store, args.file)
    print(f"{rec.diff_id} {rec.digest}")
    return 0
