"""``unionfs save IMAGE [--format FORMAT] [-o FILE|-]``: an image out of the store, as one
of podman's formats: ``oci-archive`` (the default here, a tar of an OCI layout),
``docker-archive`` (what ``docker save`` writes) or ``oci-dir`` (an OCI layout directory,
``-o DIR``; ``--layout DIR`` says the same). An archive goes to stdout when it is not a
terminal; where it goes otherwise: ``outfile``.
"""

from __future__ import annotations

import argparse

from unionfs.cli.outfile import output
from unionfs.cli.storecli import add_root, open_store
from unionfs.errors import UserError
from unionfs.store import dockerarchive, exporter
from unionfs.store.naming import name_for

FORMATS = ("oci-archive", "docker-archive", "oci-dir")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("save", help="write an image as an OCI or docker archive, or an OCI "
                       "layout", description=__doc__)  # fmt: skip
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="default oci-archive: unlike podman's default (docker-archive) it "
                   "keeps the image's digests, as the layers are stored as they are")  # fmt: skip
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="FILE",
                       help="the archive (- or none: stdout), or oci-dir's directory")  # fmt: skip
    where.add_argument("--layout", metavar="DIR", help="an OCI image layout directory")
    p.add_argument("-q", "--quiet", action="store_true", help="accepted: save prints nothing")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    fmt = args.format or ("oci-dir" if args.layout is not None else "oci-archive")
    if args.layout is not None and fmt != "oci-dir":
        raise UserError(f"--layout writes an OCI layout: it cannot be --format {fmt}", 2)
    with open_store(args) as store:
        image = store.resolve(args.image)  # a bad name fails before anything is written
        if fmt == "oci-dir":
            target = args.layout or args.output
            if target is None or target == "-":
                raise UserError("--format oci-dir writes a directory: give -o DIR", 2)
            exporter.save_layout(store, args.image, target)
            return 0
        with output(args.output, "an image archive") as out:
            if fmt == "docker-archive":
                named = name_for(args.image, {n: image.digest for n in image.names})
                tags = [named] if named else list(image.names[:1])
                dockerarchive.write(store, image, tags, out)
            else:
                exporter.write_archive(store, args.image, out)
    return 0
