"""``unionfs load [-i FILE]``: an image archive into the store, from FILE or stdin, as
``podman load``: an OCI archive or a docker archive (gzip-compressed too); prints
``Loaded image: NAME`` for each name it got (its id when it has none)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import zlib

from unionfs.cli.storecli import add_root, open_store
from unionfs.errors import UserError
from unionfs.store import importer, scratch


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("load", help="load an image archive (OCI or docker) from a file or stdin",
                       description=__doc__)  # fmt: skip
    p.add_argument("-i", "--input", metavar="FILE", help="the archive (default: stdin)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    add_root(p)


def _check_archive(path: str, label: str) -> None:
    """An image archive holds index.json (OCI) or manifest.json (docker) at its top; a
    plain rootfs tarball is for ``unionfs import``."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.name.removeprefix("./") in ("index.json", "manifest.json"):
                    return
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        raise UserError(f"{label}: not a tar archive, or a damaged one") from None
    raise UserError(f"{label}: not an image archive (no index.json or manifest.json); for a "
                    "rootfs tarball: unionfs import FILE NAME")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    source = args.input
    if source is not None and source != "-":
        if os.path.isdir(source):
            raise UserError(f"{source} is a directory: load reads an archive (for a layout: "
                            f"unionfs import {source})")  # fmt: skip
        if not os.path.exists(source):
            raise UserError(f"{source}: no such file")
    elif sys.stdin.isatty():
        raise UserError("refusing to read an archive from a terminal: give -i FILE or "
                        "redirect stdin", exit_code=2)  # fmt: skip
    with open_store(args) as store:
        if source is None or source == "-":
            # Archive members are read out of order: from a seekable copy of the stream.
            with scratch.temp_file(store.root) as (path, f):
                with os.fdopen(os.dup(0), "rb") as stdin:
                    shutil.copyfileobj(stdin, f, 1 << 20)
                f.flush()
                _check_archive(path, "stdin")
                image = importer.import_image(store, path, None)
        else:
            _check_archive(source, source)
            image = importer.import_image(store, source, None)
    if not args.quiet:
        for name in image.names or (f"sha256:{image.record.id}",):
            print(f"Loaded image: {name}")
    return 0
