"""``unionfs pull [TRANSPORT:]SOURCE [NAME]``: fetch an image into the store.

SOURCE is a registry reference (``docker://`` optional) or an archive or layout
(``oci-archive:FILE``, ``docker-archive:FILE``, ``oci:DIR``, with ``:NAME`` to pick one
image). A short name is resolved as podman does, from registries.conf: its alias, else the
unqualified-search registries (in enforcing mode, only one may be configured: there is no
prompt); a registry marked ``insecure`` there needs no ``--tls-verify=false``.
Only blobs the store lacks are downloaded, each verified against its digest before it is
renamed in; an index gives its linux/amd64 image. The image is named NAME (default: the
reference resolved) only once everything is in, so an interrupted pull leaves no image,
and a repeated one downloads only what is still missing.
"""

from __future__ import annotations

import argparse
import os
import sys

from unionfs.cli.registrycli import (
    Bars,
    add_registry_flags,
    registries,
    sources_of,
    summary_line,
    tls_verify,
)
from unionfs.cli.storecli import add_root, open_store
from unionfs.errors import UserError
from unionfs.registry import registriesconf
from unionfs.registry.auth import RegistryError
from unionfs.registry.client import Client
from unionfs.registry.manifest import Manifest
from unionfs.registry.reference import Reference
from unionfs.registry.transfer import connect, pull, resolve
from unionfs.registry.transports import parse_location
from unionfs.store import importer, normalize


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pull", help="pull an image from a registry or an archive",
                       description=__doc__)  # fmt: skip
    p.add_argument("source", metavar="[TRANSPORT:]SOURCE")
    p.add_argument("name", nargs="?", metavar="NAME[:TAG]", help="the name in the store")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--lazy", action="store_true",
                   help="fetch only the manifest, config and TOCs (eStargz, zstd:chunked); "
                        "data arrives when read, and in the background while mounted")  # fmt: skip
    add_registry_flags(p)
    add_root(p)


def run(args: argparse.Namespace) -> int:
    if args.name is not None:
        normalize(args.name)  # a bad NAME fails before anything is downloaded
    where = parse_location(args.source)
    if not where.is_registry:
        return _from_archive(args, where.target, where.name)
    conf = registries()
    tried: list[str] = []
    candidates = registriesconf.candidates(where.target, conf)
    for i, ref in enumerate(candidates):
        try:
            return _pull(args, ref, conf)
        except RegistryError as exc:
            # Another search registry is tried only when this one lacks the image.
            if exc.status not in (401, 403, 404) or i == len(candidates) - 1:
                if tried:
                    raise UserError(f"{exc.message} (also tried {', '.join(tried)})") from None
                raise
            tried.append(str(ref))
    raise AssertionError("unreachable")


def _pull(args: argparse.Namespace, ref: Reference, conf: registriesconf.Config) -> int:
    name = args.name
    if name is None and ref.digest is None:
        name = str(ref)
    with connect(ref, tls_verify=tls_verify(args, ref, conf), authfile=args.authfile) as client:
        # The registry and the manifest first: a pull that fails there leaves no trace,
        # not even a new empty store.
        resolved = resolve(client, ref)
        if getattr(args, "lazy", False):
            from unionfs.lazy.pulling import NoToc, check_lazy

            try:
                check_lazy(resolved[2])
                return _pull_lazy(args, ref, client, name, resolved, conf)
            except NoToc as exc:
                print(f"unionfs: {ref}: {exc.message}: pulling it whole", file=sys.stderr)
        with open_store(args) as store:  # opening it reclaims what a killed pull left
            summary = pull(client, ref, store, name, sources=sources_of(store),
                           progress=Bars("fetching"), resolved=resolved)  # fmt: skip
            image_id = store.resolve(summary.manifest_digest).record.id
    if args.quiet:
        print(image_id)
    else:
        print(f"pulled {ref} as {name or summary.manifest_digest}: "
              f"{summary_line('fetched', summary)}")  # fmt: skip
    return 0


def _pull_lazy(
    args: argparse.Namespace, ref: Reference, client: Client, name: str | None,
    resolved: tuple[str, bytes, Manifest], conf: registriesconf.Config,
) -> int:  # fmt: skip
    from unionfs.lazy.pulling import pull_lazy

    authfile = os.path.abspath(args.authfile) if args.authfile else None
    with open_store(args) as store:
        image, summary = pull_lazy(client, ref, store, name, resolved=resolved, authfile=authfile,
                                   tls_verify=tls_verify(args, ref, conf),
                                   sources=sources_of(store))  # fmt: skip
    if args.quiet:
        print(image.record.id)
    else:
        print(f"pulled {ref} lazily as {name or summary.manifest_digest}: {summary.layers} "
              f"layers, {summary.lazy} lazy, {summary.present} already here; TOCs "
              f"{summary.toc_bytes} bytes in {summary.requests} requests; placeholder trees "
              f"{summary.tree_seconds:.2f} s")  # fmt: skip
    return 0


def _from_archive(args: argparse.Namespace, path: str, inner: str | None) -> int:
    with open_store(args) as store:
        # The image in the archive by its full name (localhost/ for a short one), as saved.
        source = f"{path}:{normalize(inner)}" if inner else path
        image = importer.import_image(store, source, args.name)
    print(image.record.id if args.quiet else
          f"{', '.join(image.names) or '<none>'} {image.record.config}")  # fmt: skip
    return 0
