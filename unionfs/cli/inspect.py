"""``unionfs inspect IMAGE...``: images as JSON (as ``podman image inspect`` shows them)."""

from __future__ import annotations

import argparse
import json

from unionfs.cli.storecli import add_root, open_store


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("inspect", help="show an image's config, layers and digests")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    out = []
    with open_store(args) as store:
        for ref in args.images:
            image = store.resolve(ref)
            config = store.config(image)
            out.append({
                "Id": image.record.id,
                "Digest": image.digest,
                "RepoTags": list(image.names),
                "Created": config.get("created"),
                "Architecture": config.get("architecture"),
                "Os": config.get("os"),
                "Config": config.get("config", {}),
                "RootFS": {"Type": "layers", "Layers": list(image.record.diff_ids)},
                "Layers": list(image.record.blobs),
                "Size": image.record.size,
                "History": config.get("history", []),
                "LayerDirs": store.lowers(image),
            })  # fmt: skip
    print(json.dumps(out, indent=4))
    return 0
