"""``unionfs import SRC [NAME[:TAG]]``: an OCI layout or archive, a ``docker save`` archive,
or a plain rootfs directory or tarball (one layer) into the store."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store
from unionfs.store import importer


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("import", help="import an image (OCI layout/archive, docker save, rootfs)",
                       description=__doc__)  # fmt: skip
    p.add_argument("source", metavar="SRC", help="a directory or a tar file (DIR:TAG picks a "
                   "tag of a layout holding several images)")  # fmt: skip
    p.add_argument("name", nargs="?", metavar="NAME[:TAG]")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        image = importer.import_image(store, args.source, args.name)
    if args.quiet:
        print(image.record.config)
    else:
        print(f"{', '.join(image.names) or '<none>'} {image.record.config}")
    return 0
