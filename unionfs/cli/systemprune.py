"""``unionfs system prune [-a] [-f]``: ``container prune``, then ``image prune`` (``-a``:
every image no container uses), then the stale entries of the layer index (tables of
layer directories that are gone) in the store's index and the shared one, and the lazy
chunks no lazily pulled layer still needs (``lazy.prune``); prints what it
removed and the space freed, as ``podman system prune``."""

from __future__ import annotations

import argparse
import os

from unionfs import livemounts
from unionfs.cli import containerprune, humanize, imageprune
from unionfs.cli.confirm import confirm
from unionfs.cli.storecli import add_root, open_store
from unionfs.index import prune as index_prune
from unionfs.index.env import IndexUnavailable, default_dir
from unionfs.lazy import prune as lazyprune
from unionfs.runtime.state import ContainerDirs, default_home, describe

WARNING = """WARNING! This command removes:
\t- all stopped containers
\t- all dangling images (with -a: all images without a container)
\t- layers and blobs no image or container uses
\t- index entries of layers that are gone
\t- cached chunks no lazily pulled layer still needs
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("system-prune", help="remove unused containers, images, layers and "
                       "index entries", description=__doc__)  # fmt: skip
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask first")
    add_root(p)


def _roots_in_use(dirs: ContainerDirs) -> frozenset[str]:
    """Layer directories live mounts serve (their index tables must stay)."""
    roots = {r for rec in livemounts.live().values() for r in rec.lowers}
    for state in dirs.all():
        if describe(state) != "exited":
            roots.update(state.lowers or (state.rootfs,))
    return frozenset(roots)


def run(args: argparse.Namespace) -> int:
    if not args.force and not confirm(WARNING.rstrip("\n")):
        return 0
    home = getattr(args, "root", None) or default_home()
    dirs = ContainerDirs(home)
    gone = containerprune.prune(dirs)
    with open_store(args) as store:
        images, freed = imageprune.prune_images(store, args.all)
        chunks, chunk_bytes = lazyprune.prune_chunks(os.path.join(store.root, "lazy"))
        freed += chunk_bytes
        in_use = _roots_in_use(dirs)
        dropped = 0
        for where in dict.fromkeys([store.index_dir, os.path.join(store.root, "index-host"),
                                    default_dir()]):  # fmt: skip
            try:
                dropped += index_prune.prune(where, in_use)
            except IndexUnavailable as exc:
                print(f"unionfs: warning: {exc}")
    if gone:
        print("Deleted Containers")
        print("\n".join(gone))
    if images:
        print("Deleted Images")
        print("\n".join(images))
    if chunks:
        print(f"Removed {chunks} lazy chunk{'' if chunks == 1 else 's'} no lazy layer needs")
    if dropped:
        print(f"Dropped {dropped} stale layer index entr{'y' if dropped == 1 else 'ies'}")
    print(f"Total reclaimed space: {humanize.size(freed)}")
    return 0
