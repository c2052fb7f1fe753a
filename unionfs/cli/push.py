"""``unionfs push IMAGE REGISTRY/REPO[:TAG]``: send an image of the store to a registry.

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

from unionfs.cli.registrycli import Bars, add_registry_flags, sources_of, summary_line
from unionfs.cli.storecli import add_root, open_store
from unionfs.registry.reference import parse_reference
from unionfs.registry.transfer import ImageSource, connect, push
from unionfs.store import ImageStore
from unionfs.store.blobs import BlobDir
from unionfs.store.recode import FORMATS, StagedImage, convert_image


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
    p.add_argument(
        "--compression-format",
        choices=FORMATS,
        default=None,
        help="re-encode the layers first: gzip, zstd, estargz or zstd:chunked (the last two "
        "can be pulled lazily); default: push the blobs as they are",
    )
    add_registry_flags(p)
    add_root(p)


def run(args: argparse.Namespace) -> int:
    ref = parse_reference(args.dest)
    with (
        open_store(args) as store,
        connect(ref, tls_verify=args.tls_verify, authfile=args.authfile) as client,
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
    print(f"pushed {args.image} to {ref}: {summary_line('sent', summary)}")
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
