"""``unionfs history IMAGE``: each layer, newest first: digest, created, by, size, message.

History entries with ``empty_layer`` have no layer (``<missing>``), as docker shows them."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, ago, human_size, open_store, table
from unionfs.errors import UserError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="show the layers of an image and how each was made")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-trunc", action="store_true", help="full digests and commands")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        image = store.resolve(args.image)
        config = store.config(image)
        sizes = [store.blobs.size(d) for d in image.record.blobs]
    history = config.get("history")
    steps = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    layers = list(zip(image.record.diff_ids, sizes, strict=True))
    rows: list[tuple[str, ...]] = []
    for step in steps:
        if step.get("empty_layer"):
            digest, size = "<missing>", "0 B"
        elif layers:
            diff_id, n = layers.pop(0)
            digest, size = diff_id if args.no_trunc else diff_id[7:19], human_size(n)
        else:
            raise UserError(f"image {args.image}: its history names more layers than it has")
        by = str(step.get("created_by", ""))
        by = by if args.no_trunc or len(by) <= 45 else by[:42] + "..."
        rows.append((digest, ago(str(step.get("created", ""))), by, size,
                     str(step.get("comment", ""))))  # fmt: skip
    for diff_id, n in layers:  # layers without a history entry
        rows.append((diff_id if args.no_trunc else diff_id[7:19], "-", "", human_size(n), ""))
    table([("LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"), *reversed(rows)])
    return 0
