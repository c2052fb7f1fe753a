"""``unionfs push IMAGE [[TRANSPORT:]DEST]``: send an image of the store to a registry
(DEST a reference, ``docker://`` optional; none: the image's own name), or write it as
``oci-archive:FILE``, ``docker-archive:FILE[:NAME]`` or ``oci:DIR[:NAME]``.

Only the blobs the registry lacks are uploaded (HEAD first; a blob another repository of
the same registry holds is mounted, not sent); the manifest goes last. With
``--compression-format`` the layers are re-encoded first (eStargz and zstd:chunked: lazily
pullable) into a staging directory that is removed afterwards; the store keeps the image
as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator

from unionfs.cli.outfile import output
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
from unionfs.lazy import blobs as lazyblobs
from unionfs.registry.reference import has_registry, parse_reference
from unionfs.registry.transfer import ImageSource, connect, push
from unionfs.registry.transports import parse_location
from unionfs.store import ImageStore, dockerarchive, exporter, normalize
from unionfs.store.blobs import BlobDir
from unionfs.store.recode import FORMATS, StagedImage, convert_image


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("push", help="push an image to an OCI registry", description=__doc__)
    p.add_argument("image", metavar="IMAGE", help="an image of the store (name or digest)")
    p.add_argument("dest", metavar="[TRANSPORT:]DEST", nargs="?",
                   help="where to (tag: latest; default: IMAGE's name, as podman)")  # fmt: skip
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="upload blobs larger than this in chunks (PATCH); default: one request",
    )
    p.add_argument(
        "--compression-format",
        choices=FORMATS,
        default=None,
        help="re-encode the layers first: gzip, zstd, estargz or zstd:chunked (the last two "
        "can be pulled lazily); default: push the blobs as they are",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    add_registry_flags(p)
    add_root(p)


def run(args: argparse.Namespace) -> int:
    where = parse_location(args.dest or args.image)
    if not where.is_registry:
        return _to_archive(args, where.transport, where.target, where.name)
    ref = parse_reference(where.target)
    if not has_registry(where.target):
        raise UserError(f"push {where.target}: give the registry (e.g. localhost:5000/"
                        f"{where.target}): a short name does not say where to", 2)  # fmt: skip
    verify = tls_verify(args, ref, registries())
    with open_store(args) as store:
        # Layers pulled lazily: their blobs from where they came, unless the push goes to
        # that registry as they are (then it mounts them from their repository).
        same = ref.registry if args.compression_format is None else None
        lazyblobs.fetch_missing(store, store.resolve(args.image), unless_registry=same)
    with (
        open_store(args) as store,
        connect(ref, tls_verify=verify, authfile=args.authfile) as client,
        _staged(store, args.image, args.compression_format) as source,
    ):
        summary = push(
            client,
            source,
            args.image,
            ref,
            sources=sources_of(store),
            progress=Bars("sending"),
            chunk_size=args.chunk_size,
        )
    if not args.quiet:
        print(f"pushed {args.image} to {ref}: {summary_line('sent', summary)}")
    return 0


def _to_archive(args: argparse.Namespace, transport: str, path: str, name: str | None) -> int:
    """``push IMAGE oci-archive:FILE`` and the like: what ``save`` writes, to a file."""
    with open_store(args) as store:
        image = store.resolve(args.image)
        lazyblobs.fetch_missing(store, image)
        full = normalize(name) if name is not None else None
        if transport == "oci":
            exporter.save_layout(store, args.image, path, name=full)
            return 0
        with output(path, "an image archive") as out:
            if transport == "docker-archive":
                dockerarchive.write(store, image, [full] if full else list(image.names[:1]), out)
            else:
                exporter.write_archive(store, args.image, out, name=full)
    return 0


@contextlib.contextmanager
def _staged(store: ImageStore, image: str, fmt: str | None) -> Iterator[ImageSource]:
    """The store itself, or the image re-encoded in *fmt* in a staging dir of the store."""
    if fmt is None:
        yield store
        return
    with tempfile.TemporaryDirectory(prefix=".push-", dir=store.root) as tmp:
        staged = BlobDir(tmp)
        converted = convert_image(store, image, fmt, staged)
        yield StagedImage(store, staged, converted)
