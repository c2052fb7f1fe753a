"""``unionfs image prune [-a] [-f]``: remove dangling images (no name), or with ``-a`` every
image no container uses, as ``podman image prune``; then the layers and blobs no image or
container holds on to (``import-layer``'s, those a removed image left to a container since
removed). Prints the ids of the images removed."""

from __future__ import annotations

import argparse

from unionfs.cli.confirm import confirm
from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle
from unionfs.store import ImageStore, prune, rmi, sizes
from unionfs.store.images import Use

DANGLING = "WARNING! This command removes all dangling images."
ALL = "WARNING! This command removes all images without at least one container associated " \
      "with them."  # fmt: skip


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("image-prune", help="remove unused images", description=__doc__)
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask first")
    add_root(p)


def prune_images(store: ImageStore, everything: bool) -> tuple[list[str], int]:
    """Remove the unwanted images and then the orphans: (image ids removed, bytes freed)."""

    def uses() -> list[Use]:
        return lifecycle.uses(store)

    removed, freed = [], 0
    for image in prune.unwanted_images(store, uses, everything):
        freed += sizes.unique_size(store, image, store.images())
        rmi.remove_image(store, image.record.id, True, uses)
        removed.append(image.record.id)
    _orphans, more = prune.remove_orphans(store, uses)
    return removed, freed + more


def run(args: argparse.Namespace) -> int:
    if not args.force and not confirm(ALL if args.all else DANGLING):
        return 0
    with open_store(args) as store:
        removed, _freed = prune_images(store, args.all)
    for image_id in removed:
        print(image_id)
    return 0
