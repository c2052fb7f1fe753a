"""``unionfs pull REGISTRY/REPO[:TAG|@DIGEST] [NAME]``: fetch an image into the store.

Only blobs the store lacks are downloaded, each verified against its digest before it is
renamed in; an index gives its linux/amd64 image. The image is named NAME (default: the
reference as given, normalized) only once everything is in, so an interrupted pull leaves no
image, and a repeated one downloads only what is still missing.
"""

from __future__ import annotations

import argparse

from unionfs.cli.registrycli import (
    Bars,
    add_registry_flags,
    sources_of,
    summary_line,
)
from unionfs.cli.storecli import add_root, open_store
from unionfs.registry.reference import parse_reference
from unionfs.registry.transfer import connect, pull, resolve
from unionfs.store import normalize


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pull", help="pull an image from an OCI registry", description=__doc__)
    p.add_argument("source", metavar="REGISTRY/REPO[:TAG]")
    p.add_argument("name", nargs="?", metavar="NAME[:TAG]", help="the name in the store")
    add_registry_flags(p)
    add_root(p)


def run(args: argparse.Namespace) -> int:
    ref = parse_reference(args.source)
    name = args.name
    if name is None and ref.digest is None:
        name = str(ref)
    if name is not None:
        normalize(name)  # a bad NAME fails before anything is downloaded
    with connect(ref, tls_verify=args.tls_verify, authfile=args.authfile) as client:
        # The registry and the manifest first: a pull that fails there leaves no trace,
        # not even a new empty store.
        resolved = resolve(client, ref)
        with open_store(args) as store:  # opening it reclaims what a killed pull left
            summary = pull(
                client,
                ref,
                store,
                name,
                sources=sources_of(store),
                progress=Bars("fetching"),
                resolved=resolved,
            )
    print(f"pulled {ref} as {name or summary.manifest_digest}: {summary_line('fetched', summary)}")
    return 0
