"""``unionfs export-layer DIGEST -o FILE``: a layer's compressed tarball (its OCI blob)."""

from __future__ import annotations

import argparse
import contextlib
import os
import typing

from unionfs.cli.storecli import add_root, open_store
from unionfs.store import exporter


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export-layer", help="write a layer's tarball to a file")
    p.add_argument("layer", metavar="DIGEST", help="its diff_id or blob digest (or a prefix)")
    p.add_argument("-o", "--output", metavar="FILE", required=True)
    add_root(p)


def run(args: argparse.Namespace) -> int:
    tmp = f"{args.output}.tmp-{os.getpid()}"
    with open_store(args) as store:
        store.find_layer(args.layer)  # a bad digest fails before the file is made
        try:
            with open(tmp, "wb") as f:
                exporter.export_layer(store, args.layer, typing.cast(typing.BinaryIO, f))
            os.replace(tmp, args.output)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return 0
