"""``unionfs convert IMAGE NEW --estargz|--zstd-chunked``: a copy of an image of the store
with lazily pullable layers, named NEW. zstd:chunked keeps each layer's tar stream byte
for byte (same diff_ids); eStargz appends a landmark and its TOC after the tar's end (new
diff_ids, so a new config). The image stays an ordinary one for every other tool.
"""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, open_store
from unionfs.store import normalize
from unionfs.store.recode import FORMATS, convert_image


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("convert", help="re-encode an image's layers (eStargz, zstd:chunked)",
                       description=__doc__)  # fmt: skip
    p.add_argument("image", metavar="IMAGE", help="an image of the store (name or digest)")
    p.add_argument("new", metavar="NEW[:TAG]", help="the name of the converted image")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--estargz", dest="format", action="store_const", const="estargz")
    which.add_argument("--zstd-chunked", dest="format", action="store_const", const="zstd:chunked")
    which.add_argument("--format", dest="format", choices=FORMATS,
                       help="any of the layer formats (also plain gzip or zstd)")  # fmt: skip
    p.add_argument("--chunk-size", type=int, default=None, metavar="BYTES",
                   help="largest piece of a file stored on its own (default 4 MiB)")  # fmt: skip
    add_root(p)


def run(args: argparse.Namespace) -> int:
    name = normalize(args.new)
    with open_store(args) as store:
        done = convert_image(store, args.image, args.format, store.blobs,
                             chunk_size=args.chunk_size)  # fmt: skip
        store.add_image(done.manifest_digest, name)
    ids = "new diff_ids" if done.diff_ids_changed else "diff_ids unchanged"
    print(f"converted {args.image} to {name} ({args.format}): {done.recoded} layers re-encoded, "
          f"{done.kept} kept, {ids}; digest {done.manifest_digest}")
    return 0
