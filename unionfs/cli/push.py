"""``unionfs push IMAGE REGISTRY/REPO[:TAG]``: send an image of the store to a registry.

Only the blobs the registry lacks are uploaded (HEAD first; a blob another repository of
the same registry holds is mounted, not sent); the manifest goes last.
"""

from __future__ import annotations

import argparse

from unionfs.cli.registrycli import Bars, add_registry_flags, sources_of, summary_line
from unionfs.cli.storecli import add_root, open_store
from unionfs.registry.reference import parse_reference
from unionfs.registry.transfer import connect, push


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("push", help="push an image to an OCI registry", description=__doc__)
    p.add_argument("image", metavar="IMAGE", help="an image of the store (name or digest)")
    p.add_argument("dest", metavar="REGISTRY/REPO[:TAG]", help="where to (tag: latest)")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="upload blobs larger than this in chunks (PATCH); default: one request",
    )
    add_registry_flags(p)
    add_root(p)


def run(args: argparse.Namespace) -> int:
    ref = parse_reference(args.dest)
    with (
        open_store(args) as store,
        connect(ref, tls_verify=args.tls_verify, authfile=args.authfile) as client,
    ):
        summary = push(
            client,
            store,
            args.image,
            ref,
            sources=sources_of(store),
            progress=Bars("sending"),
            chunk_size=args.chunk_size,
        )
    print(f"pushed {args.image} to {ref}: {summary_line('sent', summary)}")
    return 0
