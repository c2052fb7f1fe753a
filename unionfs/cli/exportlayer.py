"""``unionfs export-layer DIGEST [-o FILE|-]``: a layer's compressed tarball (its OCI blob);
stdout when it is not a terminal. Where it goes: ``outfile``."""

from __future__ import annotations

import argparse

from unionfs.cli.outfile import output
from unionfs.cli.storecli import add_root, open_store
from unionfs.store import exporter


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export-layer", help="write a layer's tarball to a file")
    p.add_argument("layer", metavar="DIGEST", help="its diff_id or blob digest (or a prefix)")
    p.add_argument("-o", "--output", metavar="FILE", help="- or none: stdout")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.find_layer(args.layer)  # a bad digest fails before the file is made
        with output(args.output, "a layer") as out:
            exporter.export_layer(store, args.layer, out)
    return 0
